"""Data-parallel linear regression with mpi4py and NumPy only, tracked with em_dist.

No torch: every rank holds a shard of a synthetic regression problem, computes the
gradient of the mean squared error on its shard, and ``Allreduce`` averages the
gradients so that all ranks take the same step. Every rank logs its own shard loss
and gradient norm (no ``if rank == 0`` guards); rank 0's run holds them all, tagged
by rank, gathered over a duplicated MPI communicator in the background.

    mpirun -np 2 python train_mpi.py
    mpirun -np 4 --oversubscribe python train_mpi.py --steps 50
    (as root: add --allow-run-as-root)
"""

import argparse

import numpy as np
from mpi4py import MPI

import em_dist as em

parser = argparse.ArgumentParser(description='Data-parallel linear regression over MPI, tracked with em_dist.')
parser.add_argument('--steps', type=int, default=100, help='Gradient steps (default: 100).')
parser.add_argument('--features', type=int, default=16, help='Number of features (default: 16).')
parser.add_argument('--samples-per-rank', type=int, default=512, help='Examples on each rank (default: 512).')
parser.add_argument('--lr', type=float, default=0.1, help='Learning rate (default: 0.1).')
parser.add_argument('--log-every', type=int, default=5, help='Log every N steps (default: 5).')


def make_shard(rank, samples, features, seed=0):
    """This rank's shard of y = X @ w_true + noise; w_true is the same on every rank."""
    w_true = np.random.default_rng(seed).normal(size=features)
    rng = np.random.default_rng(seed + 1 + rank)
    x = rng.normal(size=(samples, features))
    y = x @ w_true + 0.1 * rng.normal(size=samples)
    return x, y, w_true


def main():
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()

    run = em.create_run(name='linreg_mpi')
    run.hparams.update({'lr': args.lr, 'steps': args.steps, 'features': args.features,
                        'samples_per_rank': args.samples_per_rank, 'world_size': size})

    x, y, w_true = make_shard(rank, args.samples_per_rank, args.features)
    w = np.zeros(args.features)
    grad = np.empty_like(w)
    for step in range(1, args.steps + 1):
        residual = x @ w - y
        local_grad = 2.0 * x.T @ residual / len(y)
        comm.Allreduce(local_grad, grad, op=MPI.SUM)  # the data-parallel step: average gradients
        grad /= size
        w -= args.lr * grad
        if step % args.log_every == 0 or step == args.steps:
            run.log(type='train', step=step, metrics={
                'loss': float(np.mean(residual ** 2)),       # this rank's shard
                'local_grad_norm': float(np.linalg.norm(local_grad)),
                'grad_norm': float(np.linalg.norm(grad)),    # the same on every rank
            })

    run.log(type='test', step=args.steps, metrics={'weight_error': float(np.linalg.norm(w - w_true))})
    run.finish()


if __name__ == '__main__':
    main()
