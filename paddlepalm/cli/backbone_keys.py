"""The config keys each backbone kind takes (``backbone.config``), and the path type of config keys."""
from typing import Any, Tuple

Path = Tuple[Any, ...]  # a key's place in the config, e.g. ("tasks", "slot", "reader", "max_len")

_TRANSFORMER = ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size",
                "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                "type_vocab_size", "sent_type_vocab_size", "initializer_range", "pad_token_id", "backbone"]
BACKBONE_KEYS = {
    "ERNIE": _TRANSFORMER + ["task_type_vocab_size", "use_task_emb", "use_task_id", "is_pairwise"],
    "BERT": _TRANSFORMER,
    "ALBERT": _TRANSFORMER + ["embedding_size", "num_hidden_groups", "inner_group_num", "layer_norm_eps"],
    "ELECTRA": _TRANSFORMER + ["embedding_size", "generator_size", "layer_norm_eps"],
    "ELMo": ["input_type", "vocab_size", "n_tokens_vocab", "cell_size", "projection_size", "num_layers", "cell_clip",
             "proj_clip", "residual", "dropout", "char_embedding_dim", "char_filters", "num_highway",
             "scalar_mix_layer_norm", "frozen", "static_graph", "lstm", "char_cnn", "tokenizer", "max_len"],
}
# paddlepalm.backbone.rnn.RNN_KEYS but `cell`, which the class fixes (tests/test_recurrent.py checks)
BACKBONE_KEYS["BiLSTM"] = BACKBONE_KEYS["BiGRU"] = [
    "vocab_size", "embedding_size", "hidden_size", "num_layers", "dropout", "char_size", "char_embedding_dim",
    "char_filters", "num_highway", "attention_heads", "elmo", "elmo_frozen"]
