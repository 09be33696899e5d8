from paddlepalm.backbone.albert import ALBERT
from paddlepalm.backbone.base_backbone import Backbone
from paddlepalm.backbone.bert import BERT
from paddlepalm.backbone.bigru import BiGRU
from paddlepalm.backbone.bilstm import BiLSTM
from paddlepalm.backbone.electra import ELECTRA
from paddlepalm.backbone.elmo import ELMo
from paddlepalm.backbone.ernie import ERNIE
from paddlepalm.backbone.rnn import RNNEncoder

__all__ = ["Backbone", "ERNIE", "BERT", "ALBERT", "ELECTRA", "ELMo", "RNNEncoder", "BiLSTM", "BiGRU"]
