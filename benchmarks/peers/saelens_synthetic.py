"""SAELens' side of `python -m benchmarks.synthetic` (run with a Python that has sae-lens).

    python saelens_synthetic.py train --architecture topk --train train.npy \
        --test test.npy --latents 1024 --l0 8 --examples 550000 --out topk.npz
    python saelens_synthetic.py generate --features 1024 --dimensions 256 --folder data/

`train` builds SAELens' own TopK, BatchTopK or JumpReLU training SAE, trains it
with SAELens' `SAETrainer` (its public training loop, Adam, its normalisation
`expected_average_only_in`, folded into the weights at the end) on shuffled
batches of the .npy, converts it to SAELens' inference SAE the way SAELens
saves it (`save_inference_model`, then `SAE.load_from_disk`: BatchTopK becomes
a JumpReLU), and writes its decoder rows, its reconstruction of the test set,
which latents fired, the L0 and the wall time of `fit()` into an .npz.

`generate` writes train.npy, test.npy and features.npy from SAELens' own
generator (`sae_lens.synthetic.SyntheticModel`, its defaults: Zipfian firing
probabilities in [0.01, 0.3], unit magnitudes, a bias) for the given sizes.

Only NumPy, torch and sae_lens: this file never imports the project.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ARCHITECTURES = ("topk", "batchtopk", "jumprelu")
CHUNK = 8192


def batches(path, batch_size, seed):
    """Endless shuffled batches (float32 tensors) of the rows of an .npy, epoch after epoch."""
    x = np.load(path, mmap_mode="r", allow_pickle=False)
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(x))
        for start in range(0, len(x) - batch_size + 1, batch_size):
            rows = np.sort(order[start:start + batch_size])
            yield torch.from_numpy(np.ascontiguousarray(x[rows], dtype="float32"))


def training_sae(args):
    """SAELens' training SAE of `args.architecture`."""
    from sae_lens import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
    from sae_lens import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig

    common = dict(d_in=args.dimensions, d_sae=args.latents,
                  normalize_activations="expected_average_only_in")
    if args.decoder_init_norm is not None:
        common["decoder_init_norm"] = args.decoder_init_norm
    if args.architecture == "topk":
        return TopKTrainingSAE(TopKTrainingSAEConfig(k=round(args.l0), **common))
    if args.architecture == "batchtopk":
        return BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(k=args.l0, **common))
    # The Gemma Scope 2 quadratic penalty around the L0 target.
    return JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(
        jumprelu_sparsity_loss_mode="quadratic", target_l0=args.l0,
        jumprelu_init_threshold=args.initial_threshold, jumprelu_bandwidth=args.bandwidth,
        **common))


def fit(sae, args):
    """Trains `sae` with SAELens' SAETrainer (settings of sae_lens.synthetic.train_toy_sae)."""
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    config = SAETrainerConfig(
        total_training_samples=args.examples, train_batch_size_samples=args.batch_size,
        lr=args.learning_rate, lr_end=args.learning_rate, lr_scheduler_name="constant",
        adam_beta1=0.9, adam_beta2=0.999, device="cpu", n_checkpoints=0,
        checkpoint_path=None, save_final_checkpoint=False,
        dead_feature_window=args.dead_after_steps, feature_sampling_window=2000,
        n_batches_for_norm_estimate=100,
        logger=LoggingConfig(log_to_wandb=False, eval_every_n_wandb_logs=2**31 - 1))
    trainer = SAETrainer(cfg=config, sae=sae,
                         data_provider=batches(args.train, args.batch_size, args.seed),
                         save_checkpoint_fn=lambda *_: None)
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start


@torch.no_grad()
def evaluate(sae, path):
    """(decoder rows, x_hat, fired, L0) of `sae` on the test .npy."""
    x = np.load(path, allow_pickle=False)
    fired = np.zeros(sae.cfg.d_sae, bool)
    x_hat, active = [], 0
    for start in range(0, len(x), CHUNK):
        h = sae.encode(torch.from_numpy(np.ascontiguousarray(x[start:start + CHUNK])))
        x_hat.append(sae.decode(h).numpy())
        fired |= (h != 0).any(dim=0).numpy()
        active += int((h != 0).sum())
    return sae.W_dec.detach().numpy(), np.concatenate(x_hat), fired, active / len(x)


def train(args):
    from sae_lens import SAE

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.dimensions = np.load(args.train, mmap_mode="r").shape[1]
    sae = training_sae(args)
    seconds = fit(sae, args)
    with tempfile.TemporaryDirectory() as folder:
        sae.save_inference_model(folder)
        inference = SAE.load_from_disk(folder, device="cpu")
    rows, x_hat, fired, l0 = evaluate(inference, args.test)
    np.savez(args.out, decoder=rows, x_hat=x_hat, fired=fired, l0=l0, seconds=seconds)
    print(json.dumps({"architecture": args.architecture, "seconds": seconds, "l0": l0}))


def generate(args):
    """SAELens' SyntheticModel (its defaults) sampled into the benchmark's .npy files."""
    from sae_lens.synthetic import SyntheticModel, SyntheticModelConfig

    torch.manual_seed(args.seed)
    model = SyntheticModel(SyntheticModelConfig(
        num_features=args.features, hidden_dim=args.dimensions, seed=args.seed))
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "features.npy", model.feature_dict.feature_vectors.detach().numpy())
    probabilities = model.activation_generator.firing_probabilities
    for name, rows in (("train.npy", args.train_examples), ("test.npy", args.test_examples)):
        parts = [model.sample(min(CHUNK, rows - start)).numpy()
                 for start in range(0, rows, CHUNK)]
        np.save(folder / name, np.concatenate(parts).astype("float32"))
    print(json.dumps({"true_l0": float(probabilities.sum())}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fit_parser = commands.add_parser("train")
    fit_parser.add_argument("--architecture", choices=ARCHITECTURES, required=True)
    fit_parser.add_argument("--train", required=True)
    fit_parser.add_argument("--test", required=True)
    fit_parser.add_argument("--latents", type=int, required=True)
    fit_parser.add_argument("--l0", type=float, required=True, help="k, or the L0 target")
    fit_parser.add_argument("--examples", type=int, required=True)
    fit_parser.add_argument("--batch-size", type=int, default=1024)
    fit_parser.add_argument("--learning-rate", type=float, default=3e-4)
    fit_parser.add_argument("--seed", type=int, default=0)
    fit_parser.add_argument("--dead-after-steps", type=int, default=1000,
                            help="batches without firing that make a latent dead (AuxK)")
    fit_parser.add_argument("--initial-threshold", type=float, default=0.01,
                            help="JumpReLU: theta's start (SAELens' default 0.01)")
    fit_parser.add_argument("--bandwidth", type=float, default=0.05,
                            help="JumpReLU: the STE's bandwidth (SAELens' default 0.05)")
    fit_parser.add_argument("--decoder-init-norm", type=float, default=None,
                            help="norm of the decoder rows at the start (SAELens' default 0.1)")
    fit_parser.add_argument("--threads", type=int, default=None,
                            help="torch's intra-op threads (default: torch's choice)")
    fit_parser.add_argument("--out", required=True)
    data_parser = commands.add_parser("generate")
    for flag in ("features", "dimensions", "train-examples", "test-examples", "seed"):
        data_parser.add_argument(f"--{flag}", type=int, required=True)
    data_parser.add_argument("--folder", required=True)
    args = parser.parse_args(argv)
    train(args) if args.command == "train" else generate(args)


if __name__ == "__main__":
    main()
