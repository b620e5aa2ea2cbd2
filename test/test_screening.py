"""Training-data screening: which feature columns read a face region, and how the faces found covered are repaired."""

from __future__ import annotations

import numpy as np
import pytest

from emotion_perception.data.face_data import FeatureRows
from emotion_perception.data.screening import Screening, training_rows
from emotion_perception.features import feature_names
from emotion_perception.features.appearance import hog_region_columns
from emotion_perception.features.sets import region_columns


def test_region_columns_of_the_default_set_are_the_brows_and_eyes_and_the_hog_blocks_above_the_nose():
    names = feature_names("named_hog")
    upper, lower = region_columns("named_hog", "upper"), region_columns("named_hog", "lower")
    upper_names = {names[k] for k in upper}
    assert {"right eye opening", "left eye openness ratio", "brow gap", "left brow slope"} <= upper_names
    assert not {"mouth width", "nose width", "chin height"} & upper_names
    assert {"mouth width", "chin height", "nose width"} <= {names[k] for k in lower}
    # a distance from an eye to a mouth corner reads both regions
    assert "right eye to mouth corner" in upper_names and "right eye to mouth corner" in {names[k] for k in lower}
    # the HOG blocks split between the regions: 4 block rows above the midline, 3 below, 7 blocks x 36 values each
    hog_upper, hog_lower = hog_region_columns("upper"), hog_region_columns("lower")
    assert len(hog_upper) == 4 * 7 * 36 and len(hog_lower) == 3 * 7 * 36
    assert not set(hog_upper) & set(hog_lower) and len({*hog_upper, *hog_lower}) == 1764
    assert set(upper) - set(range(97)) == set(97 + hog_upper)
    # geometry sets: the region's landmark coordinates
    assert {feature_names("centroid")[k] for k in region_columns("centroid", "upper")} == {
        f"{axis}{k}" for k in [*range(17, 27), *range(36, 48)] for axis in "xy"}
    with pytest.raises(ValueError):
        region_columns("named_hog", "middle")


def screening(upper: list[bool], lower: list[bool], artefacts: list[bool]) -> Screening:
    return Screening({"upper": np.array(upper), "lower": np.array(lower)}, np.array(artefacts))


def test_repair_replaces_only_the_covered_regions_columns_and_from_unflagged_faces():
    rng = np.random.default_rng(0)
    n = 8
    x = rng.normal(size=(n, 1861))
    x[6] = np.nan  # no face found
    rows = FeatureRows(x, x + 100)
    verdicts = screening([1, 1, 0, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 1, 0, 0])
    assert list(verdicts.repaired) == [1, 1, 0, 0, 0, 0, 1, 0]  # the artefact-flagged face is left out, not repaired
    repaired = verdicts.repair(rows, "named_hog", seed=1)
    upper, lower = region_columns("named_hog", "upper"), region_columns("named_hog", "lower")
    donors = x[[2, 3, 4, 7]]
    upper_only = np.setdiff1d(upper, lower)  # a face with both covered: the lower face's donor writes last
    for i, regions in ((0, [upper]), (1, [upper_only, lower])):
        for columns in regions:
            # each repaired block is one unflagged face's block, in the mirrored rows from the same donor
            matches = np.flatnonzero((donors[:, columns] == repaired.x[i, columns]).all(axis=1))
            assert len(matches) == 1
            np.testing.assert_array_equal(repaired.x_mirrored[i, columns], repaired.x[i, columns] + 100)
        others = np.setdiff1d(np.arange(1861), np.concatenate(regions))
        np.testing.assert_array_equal(repaired.x[i, others], x[i, others])
    for i in (2, 3, 4, 5, 7):
        np.testing.assert_array_equal(repaired.x[i], x[i])
    assert np.isnan(repaired.x[6]).all()
    assert verdicts.counts() == {"flagged": 4, "left_out": 1, "repaired": 3, "upper_covered": 3, "lower_covered": 2}
    # training rows at an index: the screening's verdicts follow the index, donors come from it alone
    x_train, _ = training_rows(rows, np.array([0, 3]), verdicts, "named_hog", seed=2)
    np.testing.assert_array_equal(x_train[0, upper], x[3, upper])
    with pytest.raises(ValueError, match="no unflagged"):
        verdicts.at(np.array([0, 1])).repair(FeatureRows(x[:2], None), "named_hog", seed=0)
