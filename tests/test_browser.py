import json
import shutil

import keras
import numpy as np
import pytest

import evaluate as evaluate_cli
import models
from pipeline import browser
from pipeline import data as datasets
from pipeline import export

THRESHOLD = 0.01


def read_data(folder):
    """The page's data: data.js is `window.BROWSER_DATA = {...};`."""
    text = (folder / "data.js").read_text()
    prefix = "window.BROWSER_DATA = "
    assert text.startswith(prefix)
    return json.loads(text[len(prefix):].rstrip().rstrip(";"))


def tiny_dictionary(units=12, k=3, input_shape=(6, 5, 1)):
    keras.utils.set_random_seed(0)
    return models.build_dictionary_autoencoder(input_shape, units,
                                               code_activation=models.TopK(k))


def tiny_inputs(count=30, shape=(6, 5, 1), seed=1):
    return np.random.default_rng(seed).random((count, *shape)).astype("float32")


# === The numbers, against NumPy ===

def test_latent_activations_of_a_code_map_are_channel_maxima():
    codes = np.random.default_rng(0).random((5, 2, 3, 4)).astype("float32")
    acts, position = browser.latent_activations(codes)
    flat = codes.reshape(5, 6, 4)
    np.testing.assert_array_equal(acts, flat.max(axis=1))
    for n in range(5):
        for j in range(4):
            assert flat[n, position[n, j], j] == flat[n, :, j].max()
    same, none = browser.latent_activations(codes[:, 0, 0])
    assert none is None and np.array_equal(same, codes[:, 0, 0])


def test_statistics_and_top_activations_match_numpy():
    model, x = tiny_dictionary(), tiny_inputs()
    acts = np.asarray(model.get_layer("encoder")(x))
    stats = browser.latent_statistics(acts, THRESHOLD)
    np.testing.assert_allclose(stats["density"], [np.mean(a > THRESHOLD) for a in acts.T])
    np.testing.assert_allclose(stats["mean"], acts.mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(stats["dead"], [not np.any(a > THRESHOLD) for a in acts.T])
    index, value = browser.top_activations(acts, 4)
    for j in range(acts.shape[1]):
        expected = sorted(range(len(acts)), key=lambda n: (-acts[n, j], n))[:4]
        assert list(index[j]) == expected
        np.testing.assert_array_equal(value[j], acts[expected, j])


def test_nearest_by_cosine_matches_numpy():
    rows = np.random.default_rng(2).normal(size=(7, 5))
    rows[3] = 2.5 * rows[1]  # a duplicate direction: the nearest, cosine 1
    index, cosine = browser.nearest_by_cosine(rows, n=3)
    for j in range(7):
        cos = [rows[j] @ rows[i] / np.linalg.norm(rows[j]) / np.linalg.norm(rows[i])
               if i != j else -np.inf for i in range(7)]
        # rows 1 and 3 tie up to rounding: compare the cosines, and each index by its cosine
        np.testing.assert_allclose(cosine[j], sorted(cos, reverse=True)[:3], rtol=1e-12)
        np.testing.assert_allclose(np.asarray(cos)[index[j]], cosine[j], rtol=1e-12)
    assert index[1][0] == 3 and cosine[1][0] == pytest.approx(1.0)
    assert browser.nearest_by_cosine(np.zeros((3, 4)))[1].max() == 0  # no NaN for zero rows


def test_quantile_samples_come_from_every_interval_of_firing_inputs():
    column = np.concatenate([np.zeros(10), np.linspace(0.1, 2.0, 40)])
    intervals = browser.quantile_samples(column, THRESHOLD, bins=4, per_bin=3)
    assert len(intervals) == 4
    for (low, high, picks), part in zip(intervals, np.array_split(np.arange(10, 50), 4)):
        assert low == column[part[0]] and high == column[part[-1]]
        assert set(picks) <= set(part) and len(picks) == 3
    assert browser.quantile_samples(np.zeros(5), THRESHOLD) == []


def test_label_counts_and_histogram():
    counts, top, share = browser.label_counts(np.array([0, 1, 2, 3]), np.array([4, 4, 1, 4]), 5)
    assert counts.tolist() == [0, 1, 0, 0, 3] and top == 4 and share == 0.75
    assert browser.label_counts(np.array([], int), np.array([1]), 3)[1] is None
    counts, low, high = browser.activation_histogram(np.array([0, 0.5, 1.0, 1.0]), THRESHOLD, 2)
    assert counts == [1, 2] and (low, high) == (0.5, 1.0)


# === The folder ===

def test_browser_data_matches_the_model(tmp_path):
    model, x = tiny_dictionary(), tiny_inputs()
    labels = np.arange(len(x)) % 3
    folder = browser.build_browser(model, x, tmp_path / "tiny.browser", labels=labels,
                                   top_k=5, threshold=THRESHOLD)
    page = read_data(folder)
    acts = np.asarray(model.get_layer("encoder")(x))
    assert page["latents"] == 12 and page["image"] and page["num_classes"] == 3
    np.testing.assert_allclose(page["latent"]["density"], (acts > THRESHOLD).mean(0), rtol=1e-5)
    for j, entries in enumerate(page["latent"]["top"]):
        firing = [n for n in np.argsort(-acts[:, j], kind="stable")[:5] if acts[n, j] > THRESHOLD]
        assert [e[0] for e in entries] == firing
        np.testing.assert_allclose([e[1] for e in entries], acts[firing, j], rtol=1e-5)
        share = page["latent"]["top_share"][j]
        if firing:
            assert share == pytest.approx(np.bincount(labels[firing]).max() / len(firing))
    rows = np.asarray(model.get_layer("decoder").get_layer("dictionary").kernel)
    nearest, _ = browser.nearest_by_cosine(rows)
    assert [row[0][0] for row in page["latent"]["nearest"]] == nearest[:, 0].tolist()
    sprites = page["sprites"]
    assert sprites["decoder"]["tile"] == [6, 5] and sprites["decoder"]["cols"] == 4
    from PIL import Image
    with Image.open(folder / "decoder.png") as sheet:
        assert sheet.size == (4 * 5, 3 * 6)
    assert browser.is_browser(folder) and (folder / "index.html").is_file()
    assert not list(tmp_path.glob(".*"))  # no temporaries left


@pytest.mark.parametrize("family", ["dense", "conv", "conv-dense", "vector"])
def test_every_family_and_vector_data(tmp_path, family):
    keras.utils.set_random_seed(0)
    shape = (8,) if family == "vector" else (8, 8, 1)
    if family == "conv":
        model = models.build_conv_autoencoder(shape, 3, filters=(4,))
    elif family == "conv-dense":
        model = models.build_conv_autoencoder(shape, 5, filters=(4,), code_units=5)
    else:
        model = models.build_dense_autoencoder(shape, 4, hidden_units=(6,))
    x = tiny_inputs(20, shape)
    page = read_data(browser.build_browser(model, x, tmp_path / "m.browser", top_k=3))
    assert page["image"] == (family != "vector") and page["labels"] is None
    assert page["conv"] == (family == "conv")
    assert page["latents"] == {"dense": 4, "conv": 3, "conv-dense": 5, "vector": 4}[family]
    if family == "vector":
        assert "sprites" not in page and len(page["decoder_weights"]) == 4
    if family == "conv":  # a top activation says where it fired: the argmax position
        codes = np.asarray(model.get_layer("encoder")(x)).reshape(20, -1, 3)
        for j, entries in enumerate(page["latent"]["top"]):
            for n, value, position in entries:
                assert codes[n, position, j] == pytest.approx(codes[n, :, j].max(), rel=1e-5)
                assert value == pytest.approx(codes[n, position, j], rel=1e-5)


def test_encoder_gradient_of_a_linear_code_is_its_weights():
    keras.utils.set_random_seed(0)
    model = models.build_dense_autoencoder((6,), 3, hidden_units=(), code_activation="linear")
    x = tiny_inputs(4, (6,))
    gradients = browser.encoder_gradients(model.get_layer("encoder"), x, [[0, 1], [2], []],
                                          None, 3)
    kernel = np.asarray(model.get_layer("encoder").get_layer("code").kernel)
    np.testing.assert_allclose(gradients[:2], kernel.T[:2], rtol=1e-5)
    np.testing.assert_array_equal(gradients[2], 0)


def test_a_previous_browser_is_replaced_anything_else_refused(tmp_path):
    model, x = tiny_dictionary(), tiny_inputs()
    target = browser.build_browser(model, x, tmp_path / "t.browser", top_k=4)
    (target / "old-file").write_text("from the last build")
    browser.build_browser(model, x, target, top_k=4)
    assert not (target / "old-file").exists() and browser.is_browser(target)
    other = tmp_path / "other.browser"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(export.OutputError, match="left untouched"):
        browser.build_browser(model, x, other, top_k=4)
    assert (other / "notes.txt").read_text() == "mine" and len(list(other.iterdir())) == 1


# === Bad input: one line, nothing written ===

@pytest.fixture
def saved_dictionary(tmp_path):
    model = tiny_dictionary(units=8, k=2, input_shape=(28, 28, 1))
    path = tmp_path / "models" / "tiny-dict.keras"
    path.parent.mkdir()
    model.save(path)
    return path


@pytest.mark.parametrize("case, message", [
    ("unknown-name", "Expected `model` to be a .keras file or the NAME of one in"),
    ("no-encoder", "Expected `model` to have an 'encoder' sub-model with a 'code' layer"),
    ("not-a-browser", "left untouched"),
    ("limit", "Expected at least `top_k` test inputs (the top activations shown per latent). "
              "Received: limit=4 with top_k=16"),
    ("top-k", "Expected `top_k` to be a positive integer. Received: top_k=0"),
])
def test_bad_input_is_one_line_and_writes_nothing(saved_dictionary, tiny_mnist, tmp_path,
                                                  case, message):
    out = tmp_path / "out"
    args = [str(saved_dictionary), "--browser", "--data", str(tiny_mnist), "--out", str(out)]
    if case == "unknown-name":
        args[0] = "no-such-model"
    elif case == "no-encoder":
        plain = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten()])
        plain.save(tmp_path / "plain.keras")
        args[0] = str(tmp_path / "plain.keras")
    elif case == "not-a-browser":
        (out / "tiny-dict.browser").mkdir(parents=True)
        (out / "tiny-dict.browser" / "index.html").write_text("someone else's page")
    elif case == "limit":
        args += ["--limit", "4"]
    else:
        args += ["--top-k", "0"]
    with pytest.raises(SystemExit) as info:
        evaluate_cli.main(args)
    assert info.value.code.startswith("evaluate.py: error: "), info.value.code
    assert message in info.value.code and len(info.value.code.splitlines()) == 1
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.exists() else []
    if case == "not-a-browser":
        assert written == ["tiny-dict.browser", "tiny-dict.browser/index.html"]
    else:
        assert written == []


def test_cli_builds_one_browser_per_model_beside_it(saved_dictionary, tiny_mnist):
    second = saved_dictionary.with_name("tiny-two.keras")
    shutil.copyfile(saved_dictionary, second)
    evaluate_cli.main(["--browser", str(saved_dictionary), str(second), "--data", str(tiny_mnist)])
    test_images = len(datasets.load_mnist(tiny_mnist).x_test)
    for name in ("tiny-dict", "tiny-two"):
        page = read_data(saved_dictionary.parent / f"{name}.browser")
        assert page["name"] == name and page["inputs"] == test_images


def test_labels_must_be_one_per_input(tmp_path):
    with pytest.raises(ValueError, match=r"Expected `labels` of shape \(30,\)"):
        browser.build_browser(tiny_dictionary(), tiny_inputs(), tmp_path / "l.browser",
                              labels=np.zeros(29), top_k=2)
    assert not any(tmp_path.iterdir())


def test_non_finite_weights_are_one_line(tmp_path):
    model = tiny_dictionary()
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    with pytest.raises(ValueError, match="Expected finite codes") as info:
        browser.build_browser(model, tiny_inputs(), tmp_path / "n.browser", top_k=2)
    assert len(str(info.value).splitlines()) == 1 and not any(tmp_path.iterdir())


# === In a real browser ===

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
PAGE_TIMEOUT_S = 30


@pytest.fixture
def chromium():
    """A headless Chromium driven by Selenium, logging the page's console."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    binary = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("no Chromium or chromedriver on PATH "
                    "(apt-get install chromium chromium-driver; .ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(driver_path), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    yield driver
    driver.quit()


@pytest.mark.slow
def test_the_page_in_chromium(chromium, tiny_mnist, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    keras.utils.set_random_seed(0)
    mnist = datasets.load_mnist(tiny_mnist)
    model = models.build_dictionary_autoencoder((28, 28, 1), 24, code_activation=models.TopK(4))
    models.get_family("dictionary").data_initializer(model, mnist.x_train)
    model.compile("adam", "mse")
    model.fit(mnist.x_train, mnist.x_train, epochs=3, batch_size=32, verbose=0)
    path = tmp_path / "tiny.keras"
    model.save(path)
    evaluate_cli.main([str(path), "--browser", "--data", str(tiny_mnist), "--top-k", "6"])
    folder = tmp_path / "tiny.browser"
    acts = np.asarray(model.get_layer("encoder")(mnist.x_test))

    chromium.get((folder / "index.html").as_uri())
    rows = chromium.find_elements(By.CSS_SELECTOR, "#latents tbody tr")
    assert len(rows) == 24

    def order():
        return [int(r.get_attribute("data-latent"))
                for r in chromium.find_elements(By.CSS_SELECTOR, "#latents tbody tr")]

    assert order() == list(range(24))
    chromium.find_element(By.CSS_SELECTOR, "th[data-key=density]").click()
    density = (acts > THRESHOLD).mean(axis=0)
    by_density = order()
    assert by_density != list(range(24))
    assert np.all(np.diff(density[by_density]) <= 1e-6)  # largest first

    j = int(np.argmax((acts > THRESHOLD).sum(axis=0)))  # the latent with the most top inputs
    row = chromium.find_element(By.CSS_SELECTOR, f"#latents tbody tr[data-latent='{j}']")
    chromium.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    row.click()
    WebDriverWait(chromium, PAGE_TIMEOUT_S).until(
        lambda d: d.find_element(By.ID, "latent-view").is_displayed())
    assert chromium.find_element(By.ID, "latent-title").text.startswith(f"Latent {j}")
    shown = chromium.find_elements(By.CSS_SELECTOR, "#top-examples .example")
    expected = [n for n in np.argsort(-acts[:, j], kind="stable")[:6] if acts[n, j] > THRESHOLD]
    assert len(expected) >= 2
    assert [int(e.get_attribute("data-input")) for e in shown] == expected
    values = [float(e.find_element(By.CSS_SELECTOR, ".value").text) for e in shown]
    np.testing.assert_allclose(values, acts[expected, j], rtol=1e-3)  # 4 digits shown
    loaded = chromium.execute_async_script(  # the sprite sheet the tiles show
        "const done = arguments[0]; const image = new Image();"
        "image.onload = () => done(image.naturalWidth); image.onerror = () => done(0);"
        "image.src = 'inputs.png';")
    assert loaded > 0
    errors = [entry for entry in chromium.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
