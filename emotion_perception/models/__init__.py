"""Models and their safe file formats: the landmark forest, the CNNs and their training, face crops, the
explanation rules at run time, and the shipped model files (`default_forest.npz`, `default_cnn.pt`,
`default_forest_rules.json`). Imports the core and features."""
