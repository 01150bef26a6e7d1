import numpy as np

from pipeline import plots


def test_tile_images_places_each_image():
    images = np.arange(3 * 2 * 2 * 1, dtype="float32").reshape(3, 2, 2, 1) + 1
    grid = plots.tile_images(images, ncols=2)
    step = 2 + plots.TILE_PAD
    assert grid.shape == (2 * step, 2 * step, 1)
    np.testing.assert_array_equal(grid[:2, :2], images[0])
    np.testing.assert_array_equal(grid[:2, step : step + 2], images[1])
    np.testing.assert_array_equal(grid[step : step + 2, :2], images[2])
    assert grid[step:, step:].sum() == 0  # the empty cell


def test_pictures_are_png_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((4, 8, 8, 1))
    paths = [
        plots.save_reconstructions(x, x[::-1], tmp_path / "r.png"),
        plots.save_features(rng.normal(size=(5, 8, 8, 1)), tmp_path / "f.png", "features"),
        plots.save_code_histogram(rng.random(100), tmp_path / "h.png", threshold=0.01),
    ]
    for path in paths:
        assert path.read_bytes()[:4] == b"\x89PNG"


def test_each_feature_tile_is_drawn_on_its_own_scale():
    features = np.zeros((3, 4, 4, 1))
    features[0, 0, 0] = 50.0  # one strong unit
    features[1, 1, 1], features[1, 2, 2] = 0.02, -0.01  # a weak one
    tiles = plots.normalize_tiles(features)
    np.testing.assert_allclose(tiles[0, 0, 0], 1.0)
    np.testing.assert_allclose([tiles[1, 1, 1, 0], tiles[1, 2, 2, 0]], [1.0, -0.5])
    np.testing.assert_array_equal(tiles[2], 0)  # an all-zero tile stays 0


def test_density_title_counts_units_that_never_fire():
    assert plots.density_title([-1.0, -2.5, -9.0], never_fired=-9.0, units="channels") == (
        "2 of 3 channels fire, 1 never")
