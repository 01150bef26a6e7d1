"""The Keras blog's sparse convolutional autoencoder, as a blog reader writes it.

    python benchmarks/peers/keras_blog_sparse_conv.py --data ../shared/data/mnist.npz --epochs 20

Plain Keras, nothing from this project: the model of "Building Autoencoders in
Keras" (conv encoder with max-pooling, a Dense(32, relu) code with
activity_regularizer=l1(10e-5), Dense + Reshape, transposed convs), compiled
with adam and binary cross-entropy, fitted on the 60,000 training images with
the test set as validation. Prints one JSON line: epochs, seconds, test BCE.
"""

import argparse
import json
import time

import keras
import numpy as np
from keras import layers


def build():
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Conv2D(32, 3, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Flatten()(x)
    code = layers.Dense(32, activation="relu", activity_regularizer=keras.regularizers.l1(10e-5))(x)
    x = layers.Dense(7 * 7 * 32, activation="relu")(code)
    x = layers.Reshape((7, 7, 32))(x)
    x = layers.Conv2D(32, 3, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(32, 3, strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(16, 3, strides=2, activation="relu", padding="same")(x)
    outputs = layers.Conv2DTranspose(1, 3, activation="sigmoid", padding="same")(x)
    return keras.Model(inputs, outputs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    with np.load(args.data, allow_pickle=False) as mnist:
        x_train = mnist["x_train"].astype("float32")[..., None] / 255.0
        x_test = mnist["x_test"].astype("float32")[..., None] / 255.0
    model = build()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    start = time.perf_counter()
    model.fit(x_train, x_train, epochs=args.epochs, batch_size=args.batch_size, shuffle=True,
              validation_data=(x_test, x_test), verbose=2)
    seconds = time.perf_counter() - start
    x_hat = np.clip(model.predict(x_test, verbose=0), 1e-7, 1 - 1e-7)
    bce = float(-np.mean(x_test * np.log(x_hat) + (1 - x_test) * np.log(1 - x_hat)))
    print(json.dumps({"epochs": args.epochs, "seconds": seconds, "test_bce": bce,
                      "parameters": model.count_params()}))


if __name__ == "__main__":
    main()
