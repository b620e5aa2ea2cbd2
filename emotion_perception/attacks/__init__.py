"""Attacks as pure functions of (image, landmarks or model, parameters), one registry of them by name, and the
adversarial injector's frame logic. Imports the core, features, models and data."""
