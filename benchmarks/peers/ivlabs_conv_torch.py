"""IvLabs' conv sparse autoencoder with L1 sparsity, as its authors' PyTorch code trains it.

    python benchmarks/peers/ivlabs_conv_torch.py --data ../shared/data/mnist.npz --epochs 20

Plain PyTorch (run it with a Python that has torch and numpy; the project's venv has no
torch), nothing from this project. Source: https://github.com/IvLabs/Variational-DL,
autoencoders/sparse/sparse_l1.py and loader.py (main at d35b7bc, file unchanged since
47a9f5a "Retrained the models, modified the hyperparameters"). Its README reports a test
BCE of 0.07757 after 20 epochs, measured on the first test batch of 1,200 images only.

Model: Conv2d(1, 8, 3) -> Conv2d(8, 16, 5) -> Conv2d(16, 32, 5, stride 2), each ReLU,
-> MaxPool2d(2) (code 32x4x4) -> ConvTranspose2d(32, 16, 3, stride 2) -> (16, 8, 5,
stride 2), each ReLU, -> ConvTranspose2d(8, 1, 8) with sigmoid; 24,473 parameters.
Loss = BCE(x_hat, x) + lamda * sum over the six hidden activations of mean(|a|),
lamda = 4e-5. Adam, lr 9e-3, batch 1200 shuffled, 20 epochs, torch.manual_seed(42).

Differences from the original: MNIST comes from the .npz (x / 255, what ToTensor gives)
through a TensorDataset instead of torchvision's download; no tqdm, screen clearing,
plots or interactive load/save prompts; the test BCE is over all 10,000 test images,
clipped at 1e-7 like the project's peers. Prints one JSON line: epochs, seconds
(training loop only), test BCE, parameters.
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

# === Hyperparameters of sparse_l1.py ===
BATCH_SIZE = 1200  # 50 batches per epoch on the 60,000 training images
LEARNING_RATE = 9e-3
LAMDA = 4e-5  # weight of the L1 penalty on the hidden activations
SEED = 42
EPSILON = 1e-7  # clipping of the reconstruction for the test BCE


class AE(nn.Module):
    """The conv autoencoder of sparse_l1.py; forward also returns the hidden activations."""

    def __init__(self):
        super().__init__()
        self.enc1 = nn.Conv2d(1, 8, 3, stride=1)
        self.enc2 = nn.Conv2d(8, 16, 5, stride=1)
        self.enc3 = nn.Conv2d(16, 32, 5, stride=2)
        self.bottle = nn.MaxPool2d(2, 2)
        self.dec1 = nn.ConvTranspose2d(32, 16, 3, stride=2)
        self.dec2 = nn.ConvTranspose2d(16, 8, 5, stride=2)
        self.dec3 = nn.ConvTranspose2d(8, 1, 8, stride=1)

    def forward(self, x):
        a1 = F.relu(self.enc1(x))
        a2 = F.relu(self.enc2(a1))
        a3 = F.relu(self.enc3(a2))
        a4 = self.bottle(a3)
        a5 = F.relu(self.dec1(a4))
        a6 = F.relu(self.dec2(a5))
        return torch.sigmoid(self.dec3(a6)), [a1, a2, a3, a4, a5, a6]


def l1_loss(layers):
    """lamda * sum of mean(|a|) over the hidden activations, as in sparse_l1.py."""
    return LAMDA * sum(torch.mean(torch.abs(a)) for a in layers)


def train(model, loader, epochs):
    """The training loop of sparse_l1.py: BCE plus the L1 penalty, Adam."""
    optimizer = optim.Adam(model.parameters(), lr=LEARNING_RATE)
    criterion = nn.BCELoss()
    for epoch in range(epochs):
        loss = 0.0
        for (batch,) in loader:
            optimizer.zero_grad()
            outputs, layers = model(batch)
            train_loss = criterion(outputs, batch) + l1_loss(layers)
            train_loss.backward()
            optimizer.step()
            loss += train_loss.item()
        print(f"epoch : {epoch + 1}/{epochs}, recon loss = {loss / len(loader):.8f}", flush=True)


def test_bce(model, x_test):
    """Mean per-pixel BCE over the whole test set, the reconstruction clipped at EPSILON."""
    model.eval()
    with torch.no_grad():
        loader = DataLoader(TensorDataset(x_test), batch_size=BATCH_SIZE)
        x_hat = torch.cat([model(batch)[0] for (batch,) in loader])
    x_hat, x = np.clip(x_hat.numpy(), EPSILON, 1 - EPSILON), x_test.numpy()
    return float(-np.mean(x * np.log(x_hat) + (1 - x) * np.log(1 - x_hat)))


def load_mnist(path, limit=None):
    """(x_train, x_test) as float tensors of shape (N, 1, 28, 28) in [0, 1]."""
    with np.load(path, allow_pickle=False) as mnist:
        x_train, x_test = mnist["x_train"][:limit], mnist["x_test"]
    as_tensor = lambda x: torch.from_numpy(x.astype("float32")[:, None] / 255.0)
    return as_tensor(x_train), as_tensor(x_test)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, help="MNIST .npz in the Keras layout")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--limit", type=int, default=None, help="keep the first N training images")
    parser.add_argument("--seed", type=int, default=SEED, help="torch.manual_seed")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x_train, x_test = load_mnist(args.data, args.limit)
    loader = DataLoader(TensorDataset(x_train), batch_size=BATCH_SIZE, shuffle=True)
    model = AE()
    start = time.perf_counter()
    train(model, loader, args.epochs)
    seconds = time.perf_counter() - start
    print(json.dumps({"epochs": args.epochs, "seconds": seconds,
                      "test_bce": test_bce(model, x_test),
                      "parameters": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
