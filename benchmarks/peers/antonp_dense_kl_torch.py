"""AntonP999's sparse autoencoder, 784-64-784 with KL sparsity, as its notebook trains it.

    python benchmarks/peers/antonp_dense_kl_torch.py --data ../shared/data/mnist.npz --epochs 50

Plain PyTorch (run it with a Python that has torch and numpy; the project's venv has no
torch), nothing from this project. Source: https://github.com/AntonP999/Sparse_autoencoder,
Sparse_autoencoder.ipynb and utils.py (added in 0865d9d, unchanged up to main at 2ebaabd).

Model: Linear(784, 64) + sigmoid -> Linear(64, 784) + tanh, on pixels normalised to
[-1, 1] (Normalize((0.5,), (0.5,))); 101,200 parameters. Loss = MSE(x_hat, x) +
rho_loss, where rho_loss is the mean over the 64 units of
-rho * log(rho_hat) - (1 - rho) * log(1 - rho_hat), rho_hat the unit's mean activation
over the batch, rho = 0.05, unweighted (beta = 1). The notebook calls it the KL
divergence; it is the cross-entropy, which differs from KL(rho || rho_hat) by a constant
and has the same gradients. Adam, lr 1e-4, no weight decay, batch 50 shuffled, 50 epochs.

Differences from the original: the notebook trains 16-, 64- and 256-unit models side by
side on the same batches and holds out 10,000 training images for validation; here only
the 64-unit model, on all 60,000 (the project's protocol), the optimizer built outside
the model, no seed in the notebook so --seed is ours. MNIST comes from the .npz through a
TensorDataset instead of torchvision's download. For the test BCE, the tanh output is
mapped back to pixels with (x_hat + 1) / 2, as the notebook does for its plots, then
clipped at 1e-7. Prints one JSON line: epochs, seconds (training loop only), test BCE,
parameters.
"""

import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

# === Hyperparameters of Sparse_autoencoder.ipynb ===
LATENT_SIZE = 64
RHO = 0.05
LEARNING_RATE = 1e-4
BATCH_SIZE = 50
EPSILON = 1e-7  # clipping of the reconstruction for the test BCE


class Net(nn.Module):
    """The notebook's Encoder + Decoder; forward keeps the batch's mean code as data_rho."""

    def __init__(self, latent_size=LATENT_SIZE):
        super().__init__()
        self.E = nn.Linear(28 * 28, latent_size)
        self.D = nn.Linear(latent_size, 28 * 28)

    def forward(self, x):
        h = torch.sigmoid(self.E(x.view(-1, 28 * 28)))
        self.data_rho = h.mean(0)
        return torch.tanh(self.D(h))

    def rho_loss(self, rho):
        dkl = -rho * torch.log(self.data_rho) - (1 - rho) * torch.log(1 - self.data_rho)
        return dkl.mean()


def train(model, loader, epochs):
    """The notebook's train(): MSE plus rho_loss, one Adam step per batch."""
    optimizer = optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    for epoch in range(1, epochs + 1):
        for (data,) in loader:
            optimizer.zero_grad()
            output = model(data)
            recon_loss = F.mse_loss(output, data.view(-1, 28 * 28))
            (recon_loss + model.rho_loss(RHO)).backward()
            optimizer.step()
        # Like the notebook, log the last batch's reconstruction loss.
        print(f"Train Epoch: {epoch}\tLoss: {recon_loss.item():.6f}", flush=True)


def test_bce(model, x_test):
    """Mean per-pixel BCE over the test set, in pixel units [0, 1], clipped at EPSILON."""
    with torch.no_grad():
        x_hat = torch.cat([model(data) for (data,) in DataLoader(TensorDataset(x_test), 1000)])
    x_hat = np.clip((x_hat.numpy() + 1) / 2, EPSILON, 1 - EPSILON)
    x = (x_test.numpy().reshape(len(x_test), -1) + 1) / 2
    return float(-np.mean(x * np.log(x_hat) + (1 - x) * np.log(1 - x_hat)))


def load_mnist(path, limit=None):
    """(x_train, x_test) as float tensors of shape (N, 1, 28, 28) in [-1, 1]."""
    with np.load(path, allow_pickle=False) as mnist:
        x_train, x_test = mnist["x_train"][:limit], mnist["x_test"]
    as_tensor = lambda x: torch.from_numpy((x.astype("float32")[:, None] / 255.0 - 0.5) / 0.5)
    return as_tensor(x_train), as_tensor(x_test)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, help="MNIST .npz in the Keras layout")
    parser.add_argument("--epochs", type=int, default=50, help="training epochs")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--limit", type=int, default=None, help="keep the first N training images")
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x_train, x_test = load_mnist(args.data, args.limit)
    loader = DataLoader(TensorDataset(x_train), batch_size=BATCH_SIZE, shuffle=True)
    model = Net()
    start = time.perf_counter()
    train(model, loader, args.epochs)
    seconds = time.perf_counter() - start
    print(json.dumps({"epochs": args.epochs, "seconds": seconds,
                      "test_bce": test_bce(model, x_test),
                      "parameters": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
