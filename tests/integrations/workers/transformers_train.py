"""A tiny Transformers Trainer job for the integration tests: a 1-layer BERT built from a config, synthetic data."""

import argparse

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

import em_dist as em
from em_dist.integrations.transformers import EMCallback


class Synthetic(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 50, (n, 8), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--run-at-top", action="store_true")
    p.add_argument("--checkpoints", action="store_true")
    a = p.parse_args()
    run = em.create_run(name="hf-top") if a.run_at_top else None
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=2)
    args = TrainingArguments(
        output_dir=a.out, max_steps=6, per_device_train_batch_size=4, per_device_eval_batch_size=8,
        logging_steps=1, learning_rate=1e-3, report_to="none", use_cpu=True, dataloader_num_workers=0,
        save_strategy="steps" if a.checkpoints else "no", save_steps=6, disable_tqdm=True,
    )
    callback = EMCallback(run, log_checkpoints=a.checkpoints, name="hf")
    trainer = Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=Synthetic(64, 1),
                      eval_dataset=Synthetic(16, 2), callbacks=[callback])
    trainer.train()
    trainer.evaluate()
    (run or callback.run).finish()


if __name__ == "__main__":
    main()
