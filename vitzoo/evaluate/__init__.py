"""Evaluating: images prepared as each checkpoint expects, accuracy, few-shot, the compute-vs-accuracy trade-off."""
