"""Track a data-parallel (DDP) MNIST training with em_dist: one run for the whole job.

The seed tutorial's script, made data-parallel with ``DistributedDataParallel``
(gloo on CPU, NCCL on GPUs) and a ``DistributedSampler`` per rank. The ``em`` calls
run on every rank with no ``if rank == 0`` guards: rank 0 owns the run folder, the
other ranks' records reach it in the background over em_dist's own gloo links (never
the training's process group), each tagged with its rank. Synthetic MNIST-shaped data
by default (nothing is downloaded).

    torchrun --standalone --nproc_per_node 2 train_mnist_ddp.py
    torchrun --standalone --nproc_per_node 2 train_mnist_ddp.py --epochs 1 --upload --host http://127.0.0.1:8000 --api-key KEY
"""

import argparse
import logging
import os

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset, random_split
from torch.utils.data.distributed import DistributedSampler

import em_dist as em

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

parser = argparse.ArgumentParser(description='DDP data-parallel MNIST, tracked with em_dist.')
parser.add_argument('--no_cuda', '--no-cuda', action='store_true', default=False, help='Disable CUDA training.')
parser.add_argument('--backend', default=None, help='Process group backend (default: nccl with CUDA, else gloo).')
parser.add_argument('--epochs', type=int, default=2, help='Number of epochs (default: 2).')
parser.add_argument('--train-size', type=int, default=1280,
                    help='Training examples in the whole job, 1/5 held out for validation (default: 1280).')
parser.add_argument('--test-size', type=int, default=256, help='Test examples (default: 256).')
parser.add_argument('--log-every', type=int, default=4, help='Log the training loss every N steps (default: 4).')
parser.add_argument('--upload', action=argparse.BooleanOptionalAction, default=False,
                    help='After finishing, log in and upload the run (rank 0 uploads once).')
parser.add_argument('--host', default=None, help='Server address for em.login (default: from the config file).')
parser.add_argument('--api-key', default=None, help='API key for em.login (default: from the config file).')


class Net(nn.Module):
    def __init__(self, hparams):
        super().__init__()
        self.conv1 = nn.Conv2d(1, hparams['conv_channels1'], hparams['conv_kernel_size'], 1)
        self.conv2 = nn.Conv2d(hparams['conv_channels1'], hparams['conv_channels2'], hparams['conv_kernel_size'], 1)
        self.conv3 = nn.Conv2d(hparams['conv_channels2'], hparams['conv_channels3'], hparams['conv_kernel_size'], 1)
        self.pool = nn.MaxPool2d(hparams['maxpool_size'], hparams['maxpool_size'])
        self.dense1 = nn.Linear(576, hparams['linear_features1'])
        self.dense2 = nn.Linear(hparams['linear_features1'], 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = F.relu(self.conv3(x))
        x = torch.flatten(x, 1)
        x = F.relu(self.dense1(x))
        return self.dense2(x)


def synthetic_mnist(size, seed):
    """MNIST-shaped data: a fixed blob pattern per class (same on every rank), scaled, shifted, noised."""
    coarse = (torch.rand(10, 1, 7, 7, generator=torch.Generator().manual_seed(0)) > 0.6).float()
    gen = torch.Generator().manual_seed(seed)
    templates = F.pad(F.interpolate(coarse, size=(20, 20), mode='bilinear', align_corners=False), (4, 4, 4, 4))
    labels = torch.randint(0, 10, (size,), generator=gen)
    images = templates[labels] * (0.6 + 0.4 * torch.rand(size, 1, 1, 1, generator=gen))
    shifts = torch.randint(-2, 3, (size, 2), generator=gen)
    for i in range(size):
        images[i] = torch.roll(images[i], shifts=(int(shifts[i, 0]), int(shifts[i, 1])), dims=(1, 2))
    images = (images + 0.3 * torch.randn(size, 1, 28, 28, generator=gen)).clamp(0.0, 1.0)
    return TensorDataset((images - MNIST_MEAN) / MNIST_STD, labels)


def average(value):
    """Mean of a scalar over all ranks (an all_reduce on the training's own group, as usual)."""
    t = torch.tensor([float(value)], device=device)
    dist.all_reduce(t)
    return t.item() / dist.get_world_size()


def train(epoch):
    global global_step
    model.train()
    train_sampler.set_epoch(epoch)
    for step, (data, target) in enumerate(train_loader, 1):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        loss = criterion(model(data), target)
        loss.backward()
        optimizer.step()
        global_step += 1
        if step % args.log_every == 0:
            # Every rank logs its own loss (a tensor is fine: em_dist never syncs the GPU in log()).
            run.log(type='train', metrics={'loss': loss.detach()}, step=global_step, epoch=epoch)
            logging.info('epoch %d/%d, batch %d/%d with loss: %.4f',
                         epoch, epochs, step, len(train_loader), loss.item())
    scheduler.step()


def evaluate(loader, label, epoch=None):
    model.eval()
    running_loss, correct, seen = 0.0, 0, 0
    with torch.no_grad():
        for data, target in loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            running_loss += criterion(output, target).item() * len(target)
            correct += (output.argmax(1) == target).sum().item()
            seen += len(target)
    loss, accuracy = running_loss / max(seen, 1), correct / max(seen, 1)
    # This rank's shard, and the job-wide average (the same on every rank).
    run.log(type=label, metrics={'loss': loss, 'accuracy': accuracy,
                                 'loss_avg': average(loss), 'accuracy_avg': average(accuracy)},
            step=global_step, epoch=epoch)
    logging.info('%s loss: %.4f, accuracy: %.4f', label, loss, accuracy)


if __name__ == '__main__':
    args = parser.parse_args()
    rank, local_rank = int(os.environ.get('RANK', 0)), int(os.environ.get('LOCAL_RANK', 0))
    logging.basicConfig(format=f'%(asctime)s [rank {rank}] %(levelname)-8s %(message)s',
                        level=logging.INFO, datefmt='%H:%M:%S')
    use_cuda = not args.no_cuda and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device('cuda', local_rank)
    else:
        torch.set_num_threads(1)  # several ranks share the CPU cores
        device = torch.device('cpu')
    backend = args.backend or ('nccl' if use_cuda else 'gloo')

    # create_run may come before or after init_process_group; em_dist never uses this group.
    run = em.create_run(name='mnist_ddp')
    dist.init_process_group(backend)
    world_size = dist.get_world_size()
    run.hparams.update({
        'batch_size': 32,
        'epochs': args.epochs,
        'learning_rate': 0.001 * world_size,  # linear scaling with the global batch
        'gamma': 0.7,
        'conv_channels1': 32,
        'conv_channels2': 64,
        'conv_channels3': 64,
        'conv_kernel_size': 3,
        'maxpool_size': 2,
        'linear_features1': 64,
        'seed': 1,
        'world_size': world_size,
        'backend': backend,
    })
    hparams = run.hparams
    torch.manual_seed(hparams['seed'])

    dataset = synthetic_mnist(args.train_size, hparams['seed'])
    test_dataset = synthetic_mnist(args.test_size, hparams['seed'] + 1)
    val_size = len(dataset) // 5
    train_dataset, val_dataset = random_split(dataset, [len(dataset) - val_size, val_size],
                                              generator=torch.Generator().manual_seed(hparams['seed']))
    train_sampler = DistributedSampler(train_dataset)
    train_loader = DataLoader(train_dataset, batch_size=hparams['batch_size'], sampler=train_sampler)
    val_loader = DataLoader(val_dataset, batch_size=200, sampler=DistributedSampler(val_dataset, shuffle=False))
    test_loader = DataLoader(test_dataset, batch_size=200, sampler=DistributedSampler(test_dataset, shuffle=False))

    model = DDP(Net(hparams).to(device), device_ids=[local_rank] if use_cuda else None)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=hparams['learning_rate'])
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=hparams['gamma'])

    global_step = 0
    epochs = hparams['epochs']
    for epoch in range(1, epochs + 1):
        train(epoch)
        evaluate(val_loader, 'val', epoch)
    evaluate(test_loader, 'test')

    # Weights are identical on every rank; each rank records its own copy, and the
    # copies of ranks 1.. reach rank 0's run (artifacts from any rank are shipped).
    path = f'model_state_dict.rank{rank}.pt'
    torch.save(model.module.state_dict(), path)
    model_artifact = em.create_artifact(name='mnist_ddp_saved_model')
    model_artifact.add_file(path, obj_path='model_state_dict.pt')
    run.mark_output(model_artifact)

    run.finish()
    dist.destroy_process_group()
    if args.upload:
        em.login(host=args.host, api_key=args.api_key)
        run.upload(folder='em-examples', make_folder=True)  # rank 0 uploads once; others return
