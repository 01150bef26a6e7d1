"""The Keras blog's sparse dense autoencoder, as a blog reader writes it.

    python benchmarks/peers/keras_blog_sparse_dense.py --data ../shared/data/mnist.npz --epochs 5

Plain Keras, nothing from this project: the 784-32-784 model of "Building
Autoencoders in Keras" (F. Chollet, 2016), section "Adding a sparsity
constraint on the encoded representations": Dense(32, relu) with
activity_regularizer=l1(10e-5), Dense(784, sigmoid), adam, binary
cross-entropy, batch 256, shuffled, the test set as validation (the blog
trains 100 epochs). Prints one JSON line: epochs, seconds, test BCE.
"""

import argparse
import json
import time

import keras
import numpy as np
from keras import layers

CODE_SIZE = 32
L1 = 10e-5


def build():
    inputs = keras.Input((784,))
    code = layers.Dense(CODE_SIZE, activation="relu",
                        activity_regularizer=keras.regularizers.l1(L1))(inputs)
    outputs = layers.Dense(784, activation="sigmoid")(code)
    return keras.Model(inputs, outputs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    with np.load(args.data, allow_pickle=False) as mnist:
        x_train = mnist["x_train"].astype("float32").reshape(-1, 784) / 255.0
        x_test = mnist["x_test"].astype("float32").reshape(-1, 784) / 255.0
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
