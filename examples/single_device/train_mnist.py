"""Track a single-device PyTorch MNIST training with em_dist.

The seed tutorial's script (a small CNN, Adam, StepLR, train/val/test loops) with
``import em_dist as em`` in place of ``from t9k import em``; its ``em`` calls are
unchanged. Without a dataset on disk it trains on a synthetic MNIST-shaped dataset
(28x28 grayscale, 10 classes, learnable), so it never downloads anything;
``--data DIR`` uses real MNIST in torchvision's layout (``DIR/MNIST/raw/...``).

    python train_mnist.py                      # synthetic data, a few seconds on a CPU
    python train_mnist.py --data ~/datasets    # real MNIST, needs torchvision
    python train_mnist.py --upload --host http://127.0.0.1:8000 --api-key KEY
"""

import argparse
import logging
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, Subset, TensorDataset, random_split

import em_dist as em

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

parser = argparse.ArgumentParser(description='Recording of PyTorch model training for MNIST dataset.')
parser.add_argument('--no_cuda', '--no-cuda', action='store_true', default=False, help='Disable CUDA training.')
parser.add_argument('--data', default=None, metavar='DIR',
                    help="Root of real MNIST in torchvision's layout (DIR/MNIST/raw); synthetic data when absent.")
parser.add_argument('--epochs', type=int, default=2, help='Number of epochs (default: 2).')
parser.add_argument('--train-size', type=int, default=1280,
                    help='Training examples, 1/5 of them held out for validation (default: 1280).')
parser.add_argument('--test-size', type=int, default=256, help='Test examples (default: 256).')
parser.add_argument('--log-every', type=int, default=8, help='Log the training loss every N steps (default: 8).')
parser.add_argument('--upload', action=argparse.BooleanOptionalAction, default=False,
                    help='After finishing, log in and upload the run to a server (default: --no-upload).')
parser.add_argument('--host', default=None, help='Server address for em.login (default: from the config file).')
parser.add_argument('--api-key', default=None, help='API key for em.login (default: from the config file).')
logging.basicConfig(format='%(asctime)s %(levelname)-8s %(message)s', level=logging.INFO,
                    datefmt='%Y-%m-%d %H:%M:%S')


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, hparams['conv_channels1'],
                               hparams['conv_kernel_size'], 1)
        self.conv2 = nn.Conv2d(hparams['conv_channels1'],
                               hparams['conv_channels2'],
                               hparams['conv_kernel_size'], 1)
        self.conv3 = nn.Conv2d(hparams['conv_channels2'],
                               hparams['conv_channels3'],
                               hparams['conv_kernel_size'], 1)
        self.pool = nn.MaxPool2d(hparams['maxpool_size'],
                                 hparams['maxpool_size'])
        self.dense1 = nn.Linear(576, hparams['linear_features1'])
        self.dense2 = nn.Linear(hparams['linear_features1'], 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = F.relu(self.conv3(x))
        x = torch.flatten(x, 1)
        x = F.relu(self.dense1(x))
        return self.dense2(x)  # logits; CrossEntropyLoss applies log-softmax


def synthetic_mnist(size, seed):
    """MNIST-shaped data: each class is a fixed random blob pattern, scaled, shifted and noised.

    The class patterns are the same for every ``seed`` (so train and test share them);
    ``seed`` picks the examples. Normalised like MNIST. The small CNN learns it within
    an epoch, so the loss visibly falls.
    """
    coarse = (torch.rand(10, 1, 7, 7, generator=torch.Generator().manual_seed(0)) > 0.6).float()
    gen = torch.Generator().manual_seed(seed)
    templates = F.interpolate(coarse, size=(20, 20), mode='bilinear', align_corners=False)
    templates = F.pad(templates, (4, 4, 4, 4))  # 28x28 with an empty border, like MNIST digits
    labels = torch.randint(0, 10, (size,), generator=gen)
    images = templates[labels] * (0.6 + 0.4 * torch.rand(size, 1, 1, 1, generator=gen))
    shifts = torch.randint(-2, 3, (size, 2), generator=gen)
    for i in range(size):
        images[i] = torch.roll(images[i], shifts=(int(shifts[i, 0]), int(shifts[i, 1])), dims=(1, 2))
    images = (images + 0.3 * torch.randn(size, 1, 28, 28, generator=gen)).clamp(0.0, 1.0)
    return TensorDataset((images - MNIST_MEAN) / MNIST_STD, labels)


def take(dataset, size, seed):
    """A random subset of ``size`` examples (all of them when ``size`` is larger)."""
    if size >= len(dataset):
        return dataset
    indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:size]
    return Subset(dataset, indices.tolist())


def load_datasets(data_dir, train_size, test_size, seed):
    """Return ``(train_and_val, test, source)``: real MNIST when ``data_dir`` holds it, else synthetic."""
    if data_dir and os.path.isdir(os.path.join(data_dir, 'MNIST', 'raw')):
        try:
            from torchvision import datasets, transforms  # only needed for real MNIST
        except ImportError:
            logging.warning('torchvision is not installed: using synthetic data instead of %s', data_dir)
        else:
            transform = transforms.Compose([transforms.ToTensor(),
                                            transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
            train = datasets.MNIST(data_dir, train=True, download=False, transform=transform)
            test = datasets.MNIST(data_dir, train=False, download=False, transform=transform)
            return take(train, train_size, seed), take(test, test_size, seed), 'mnist'
    elif data_dir:
        logging.warning('no MNIST under %s: using synthetic data', data_dir)
    return synthetic_mnist(train_size, seed), synthetic_mnist(test_size, seed + 1), 'synthetic'


def train(scheduler):
    global global_step
    for epoch in range(1, epochs + 1):
        model.train()
        for step, (data, target) in enumerate(train_loader, 1):
            data, target = data.to(device), target.to(device)
            optimizer.zero_grad()
            output = model(data)
            loss = criterion(output, target)
            loss.backward()
            optimizer.step()

            if step % args.log_every == 0:
                train_loss = loss.item()
                logging.info(
                    'epoch {:d}/{:d}, batch {:5d}/{:d} with loss: {:.4f}'.
                    format(epoch, epochs, step, steps_per_epoch, train_loss))
                global_step = (epoch - 1) * steps_per_epoch + step

                run.log(type='train',
                        metrics={'loss': train_loss},
                        step=global_step,
                        epoch=epoch)

        scheduler.step()
        global_step = epoch * steps_per_epoch
        test(val=True, epoch=epoch)


def test(val=False, epoch=None):
    label = 'val' if val else 'test'
    model.eval()
    running_loss = 0.0
    correct = 0

    with torch.no_grad():
        loader = val_loader if val else test_loader
        for data, target in loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            loss = criterion(output, target)
            running_loss += loss.item()
            prediction = output.max(1)[1]
            correct += (prediction == target).sum().item()

    test_loss = running_loss / len(loader)
    test_accuracy = correct / len(loader.dataset)
    msg = '{:s} loss: {:.4f}, {:s} accuracy: {:.4f}'.format(
        label, test_loss, label, test_accuracy)
    if val:
        msg = 'epoch {:d}/{:d} with '.format(epoch, epochs) + msg
    logging.info(msg)

    run.log(type=label,
            metrics={
                'loss': test_loss,
                'accuracy': test_accuracy,
            },
            step=global_step,
            epoch=epoch)


if __name__ == '__main__':
    args = parser.parse_args()
    if args.epochs < 1 or args.train_size < 10 or args.test_size < 1 or args.log_every < 1:
        parser.error('--epochs, --test-size and --log-every must be >= 1, --train-size >= 10')

    run = em.create_run(name='mnist_torch')
    run.hparams.update({
        'batch_size': 32,
        'epochs': args.epochs,
        'learning_rate': 0.001,
        'learning_rate_decay_period': 1,
        'learning_rate_decay_factor': 0.7,
        'conv_channels1': 32,
        'conv_channels2': 64,
        'conv_channels3': 64,
        'conv_kernel_size': 3,
        'maxpool_size': 2,
        'linear_features1': 64,
        'seed': 1,
    })
    hparams = run.hparams

    use_cuda = not args.no_cuda and torch.cuda.is_available()
    device = 'cuda' if use_cuda else 'cpu'
    logging.info('Using device: %s', device)
    torch.manual_seed(hparams['seed'])

    model = Net().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=hparams['learning_rate'])
    scheduler = optim.lr_scheduler.StepLR(
        optimizer,
        step_size=hparams['learning_rate_decay_period'],
        gamma=hparams['learning_rate_decay_factor'])

    dataset, test_dataset, source = load_datasets(
        args.data, args.train_size, args.test_size, hparams['seed'])
    run.hparams.update({'dataset': source, 'train_size': args.train_size, 'test_size': args.test_size})
    val_size = len(dataset) // 5
    train_dataset, val_dataset = random_split(
        dataset, [len(dataset) - val_size, val_size],
        generator=torch.Generator().manual_seed(hparams['seed']))

    kwargs = {'num_workers': 1, 'pin_memory': True} if use_cuda else {}
    train_loader = DataLoader(train_dataset,
                              batch_size=hparams['batch_size'],
                              shuffle=True,
                              **kwargs)
    val_loader = DataLoader(val_dataset,
                            batch_size=400,
                            shuffle=False,
                            **kwargs)
    test_loader = DataLoader(test_dataset,
                             batch_size=400,
                             shuffle=False,
                             **kwargs)

    global_step = 0
    epochs = hparams['epochs']
    steps_per_epoch = len(train_loader)
    train(scheduler)
    test()

    torch.save(model.state_dict(), 'model_state_dict.pt')
    model_artifact = em.create_artifact(name='mnist_torch_saved_model')
    model_artifact.add_file('model_state_dict.pt')
    run.mark_output(model_artifact)

    run.finish()
    if args.upload:
        em.login(host=args.host, api_key=args.api_key)
        run.upload(folder='em-examples', make_folder=True)
