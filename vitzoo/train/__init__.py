"""Fine-tuning as the paper transfers (§3.2, App. B.1.1): ``vitzoo.train.loop.finetune`` and its parts.

``recipe`` (what to run: the paper's defaults), ``schedule`` (warm-up + cosine learning rate, global-norm clipping,
SGD with momentum: closed forms), ``augment`` (vit_jax's inception crop and flip, seeded per image), ``batches``
(which images each step, rank and micro-batch sees), ``state`` (the atomic resume checkpoint and the fine-tuned
vitzoo file), ``loop`` (the training loop: accumulation, autocast, DDP, validation, Ctrl-C). Nothing here prints.
"""
