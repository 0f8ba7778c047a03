"""Instruction fine-tuning: the IFT export and LoRA."""
