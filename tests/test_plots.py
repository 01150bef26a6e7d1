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
