"""centre_point: one click that is inside the target whatever its shape, deterministic, and loud when empty."""
import numpy as np
import pytest

from lisalib.reasonseg.masks import centre_point


def inside(mask, point):
    x, y = point
    assert x == int(x) and y == int(y)  # a pixel index, as SAM's callers pass it
    return bool(mask[int(y), int(x)])


def test_c_shape_click_is_inside_where_the_pixel_mean_is_not():
    mask = np.zeros((20, 20), bool)
    mask[2:18, 2:7] = True  # the back of the C
    mask[2:7, 2:18] = True  # top arm
    mask[13:18, 2:18] = True  # bottom arm
    ys, xs = np.nonzero(mask)
    assert not mask[round(ys.mean()), round(xs.mean())]  # the mean falls in the C's opening
    assert inside(mask, centre_point(mask))
    # 34 pixels tie at distance 3 (the C's centre line); nearest to their mean (7.9, 9.5) are (4, 9) and
    # (4, 10) on the back, and row-major order picks the first
    assert centre_point(mask) == (4.0, 9.0)


def test_ring_click_is_on_the_ring():
    yy, xx = np.mgrid[:31, :31]
    radius = np.hypot(yy - 15, xx - 15)
    ring = (radius >= 8) & (radius <= 13)
    assert not ring[15, 15]
    assert inside(ring, centre_point(ring))


def test_two_part_mask_clicks_the_larger_part():
    mask = np.zeros((12, 30), bool)
    mask[2:11, 1:10] = True  # 9 x 9 part, centre (5, 6), distance 5
    mask[3:8, 20:29] = True  # 5 x 9 part, distance at most 3
    assert centre_point(mask) == (5.0, 6.0)
    ys, xs = np.nonzero(mask)
    assert not mask[round(ys.mean()), round(xs.mean())]  # the mean lies between the parts


def test_ties_and_conventions():
    bar = np.zeros((6, 12), bool)
    bar[1:5, 1:11] = True  # 4 rows x 10 columns: rows 2 and 3, columns 2..9 all at distance 2
    assert centre_point(bar) == (5.0, 2.0)  # nearest to the ties' mean (5.5, 2.5), then row-major
    assert centre_point(np.flipud(bar)) == (5.0, 2.0)
    edge = np.ones((5, 5), bool)  # outside the image counts as background: the click keeps off the border
    assert centre_point(edge) == (2.0, 2.0)
    reasonseg = np.zeros((10, 20), np.uint8)
    reasonseg[2:5, 4:7] = 1
    reasonseg[0:10, 10:20] = 255  # ignore pixels are not target: they never attract the click
    assert centre_point(reasonseg) == (5.0, 3.0)
    assert centre_point(reasonseg) == centre_point(reasonseg == 1)


def test_empty_or_ignore_only_mask_is_an_error():
    with pytest.raises(ValueError, match="no target pixels"):
        centre_point(np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="no target pixels"):
        centre_point(np.full((4, 4), 255, np.uint8))
    with pytest.raises(ValueError, match=r"one \[H, W\] mask"):
        centre_point(np.ones((2, 4, 4), bool))


def test_ignore_pixels_do_not_pull_the_click():
    mask = np.zeros((10, 20), np.uint8)
    mask[2:5, 4:7] = 1  # centre (5, 3)
    mask[8:10, 15:20] = 255  # ignore pixels do not pull the click
    assert centre_point(mask) == (5.0, 3.0)
    with pytest.raises(ValueError, match="no target pixels"):
        centre_point(np.full((4, 4), 255, np.uint8))
