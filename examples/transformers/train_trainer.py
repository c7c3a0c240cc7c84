"""Track a Hugging Face ``Trainer`` on every process (a tiny BERT built from a config, synthetic data).

``EMCallback`` records what the Trainer logs on each process (loss, grad norm, learning
rate; ``eval_*`` as ``val``), the TrainingArguments and the model config as hparams, and
with ``log_checkpoints=True`` the last checkpoint as an output artifact. No weights are
downloaded.

    python examples/transformers/train_trainer.py
    torchrun --nproc_per_node=2 examples/transformers/train_trainer.py
"""

import argparse

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from em_dist.integrations.transformers import EMCallback


class Synthetic(torch.utils.data.Dataset):
    """Token sequences whose label is whether token 7 occurs: learnable, nothing to download."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 64, (n, 16), generator=g)
        self.labels = (self.ids == 7).any(dim=1).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", default="trainer-output")
    args = parser.parse_args()
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, num_labels=2)
    training_args = TrainingArguments(output_dir=args.out, max_steps=args.steps, per_device_train_batch_size=16,
                                      logging_steps=5, eval_strategy="steps", eval_steps=20, save_steps=args.steps,
                                      learning_rate=1e-3, report_to="none", use_cpu=True)
    callback = EMCallback(name="bert_tiny", log_checkpoints=True)
    trainer = Trainer(model=BertForSequenceClassification(config), args=training_args,
                      train_dataset=Synthetic(2048, 0), eval_dataset=Synthetic(256, 1), callbacks=[callback])
    trainer.train()
    callback.finish()
