"""Tiny models built from a config (random weights) with a tokenizer trained on a few sentences.

Unit tests and benchmarks use these to exercise the real loading, batching, generation and
scoring code in seconds, with no model hub. They are saved as ordinary Hugging Face folders,
so the code under test loads them exactly as it loads a real model.
"""

from __future__ import annotations

from pathlib import Path

SENTENCES = (
    "Жалобы на головную боль, слабость и повышение температуры тела до 38 градусов.",
    "Пациентка отмечает кашель с мокротой, насморк, боль в горле в течение трёх дней.",
    "Боли в поясничном отделе позвоночника, усиливающиеся при движении, онемение ноги.",
    "Давление повышается до 160/100, головокружение, шум в ушах, одышка при нагрузке.",
    "Жажда, сухость во рту, частое мочеиспускание, снижение веса за последний месяц.",
    "Боль в эпигастрии после еды, изжога, тошнота, отрыжка кислым.",
    "Patient complains of headache, fever and cough for three days.",
    "Анамнез: болеет около недели, лечился самостоятельно, без эффекта. *ДАТА*",
)

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def train_tokenizer(sentences: tuple[str, ...] | list[str] = SENTENCES, vocab_size: int = 300,
                    model_max_length: int = 512, kind: str = "causal"):
    """A byte-level BPE tokenizer trained on ``sentences``, wrapped as ``PreTrainedTokenizerFast``.

    ``kind="causal"`` gives bos/eos/pad tokens and a chat template; ``kind="encoder"`` gives
    BERT-style ``[CLS] … [SEP]`` wrapping.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "causal":
        specials = ["<pad>", "<s>", "</s>", "<unk>"]
    elif kind == "encoder":
        specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}: use 'causal' or 'encoder'")
    tokenizer = Tokenizer(models.BPE(unk_token=specials[3]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(list(sentences), trainer=trainer)
    if kind == "encoder":
        cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
        return PreTrainedTokenizerFast(
            tokenizer_object=tokenizer, model_max_length=model_max_length, pad_token="[PAD]",
            cls_token="[CLS]", sep_token="[SEP]", unk_token="[UNK]", mask_token="[MASK]")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=model_max_length, pad_token="<pad>",
        bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_causal_lm(folder: str | Path, *, vocab_size: int = 300, hidden_size: int = 32,
                   layers: int = 2, heads: int = 4, chat: bool = True, seed: int = 0) -> Path:
    """Save a random-weight Llama-shaped causal LM and its tokenizer into ``folder``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    tokenizer = train_tokenizer(vocab_size=vocab_size, kind="causal")
    if not chat:
        tokenizer.chat_template = None
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_encoder(folder: str | Path, *, vocab_size: int = 300, hidden_size: int = 32,
                 layers: int = 4, heads: int = 4, max_length: int = 128, seed: int = 0) -> Path:
    """Save a random-weight BERT encoder and its tokenizer into ``folder``."""
    import torch
    from transformers import BertConfig, BertModel

    folder = Path(folder)
    tokenizer = train_tokenizer(vocab_size=vocab_size, kind="encoder", model_max_length=max_length)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden_size,
                        num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=hidden_size * 2, max_position_embeddings=max_length,
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
