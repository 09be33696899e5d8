"""PALM's joint slot + intent script (top of the API contract) runs with only its paths changed."""
import json
import os
import textwrap

import paddle
from paddlenlp.transformers import ErnieConfig, ErnieModel

from conftest import tiny_config

PALM_SCRIPT = '''
import json
import paddlepalm as palm

seq_label_reader = palm.reader.SequenceLabelReader(vocab_path, max_seqlen, label_map, seed=random_seed)
cls_reader = palm.reader.ClassifyReader(vocab_path, max_seqlen, seed=random_seed)
seq_label_reader.load_data(train_slot, file_format='tsv', num_epochs=None, batch_size=batch_size)
cls_reader.load_data(train_intent, batch_size=batch_size, num_epochs=None)

config = json.load(open(PRETRAIN + '/ernie_config.json'))
ernie = palm.backbone.ERNIE.from_config(config)
seq_label_reader.register_with(ernie)
cls_reader.register_with(ernie)

seq_label_head = palm.head.SequenceLabel(num_classes, input_dim, dropout_prob)
cls_head = palm.head.Classify(num_classes_intent, input_dim, dropout_prob)

trainer_seq_label = palm.Trainer("slot", mix_ratio=1.0)
trainer_cls = palm.Trainer("intent", mix_ratio=1.0)
trainer = palm.MultiHeadTrainer([trainer_seq_label, trainer_cls])
loss1 = trainer_cls.build_forward(ernie, cls_head)
loss2 = trainer_seq_label.build_forward(ernie, seq_label_head)
loss_var = trainer.build_forward()

n_steps = seq_label_reader.num_examples * 1.5 * num_epochs // batch_size
sched = palm.lr_sched.TriangularSchedualer(int(0.1 * n_steps), n_steps)
adam = palm.optimizer.Adam(loss_var, lr, sched)
trainer.build_backward(optimizer=adam, weight_decay=weight_decay)
trainer.fit_readers_with_mixratio([seq_label_reader, cls_reader], "slot", num_epochs)
trainer.load_pretrain(PRETRAIN)
trainer.set_saver(save_path='./outputs/', save_steps=300)
trainer.train(print_steps=10)
'''

PALM_PREDICT = '''
import paddlepalm as palm
predict_cls_reader = palm.reader.ClassifyReader(vocab_path, max_seqlen, seed=random_seed, phase='predict')
predict_cls_reader.load_data(test_intent, batch_size=batch_size)
pred_ernie = palm.backbone.ERNIE.from_config(config, phase='predict')
predict_cls_reader.register_with(pred_ernie)
cls_pred_head = palm.head.Classify(num_classes_intent, input_dim, phase='predict')
trainer_cls = palm.Trainer("intent")
trainer_cls.build_predict_forward(pred_ernie, cls_pred_head)
trainer_cls.load_ckpt(ckpt_path)
trainer_cls.fit_reader(predict_cls_reader, phase='predict')
trainer_cls.predict(print_steps=20, output_dir='./outputs/predict/intent')
'''


def test_palm_script_runs_through_prediction(joint_data, tmp_path, monkeypatch):
    d = joint_data["dir"]
    vocab = os.path.join(d, "vocab.txt")
    pretrain = tmp_path / "pretrain" / "ERNIE-tiny"
    pretrain.mkdir(parents=True)
    config = tiny_config(sum(1 for _ in open(vocab, encoding="utf-8")))
    (pretrain / "ernie_config.json").write_text(json.dumps(config))
    paddle.seed(5)
    source = ErnieModel(ErnieConfig(**{k: v for k, v in config.items()}))
    paddle.save(source.state_dict(), str(pretrain / "model_state.pdparams"))

    monkeypatch.chdir(tmp_path)
    env = dict(vocab_path=vocab, max_seqlen=32, label_map=os.path.join(d, "label_map.json"), random_seed=1,
               train_slot=os.path.join(d, "slot", "train.tsv"), train_intent=os.path.join(d, "intent", "train.tsv"),
               test_intent=os.path.join(d, "intent", "test.tsv"), batch_size=16, num_epochs=2,
               num_classes=joint_data["slot_classes"], num_classes_intent=joint_data["intent_classes"],
               input_dim=32, dropout_prob=0.1, lr=1e-3, weight_decay=0.01, PRETRAIN=str(pretrain))
    exec(compile(PALM_SCRIPT, "palm_script", "exec"), env)
    trainer = env["trainer"]
    # load_pretrain really loaded the source weights before training started: compare the position
    # embeddings of rows never used by this short data (positions past the longest sequence).
    loaded = trainer.model.backbone.model.embeddings.position_embeddings.weight.numpy()[120:]
    assert abs(loaded - source.embeddings.position_embeddings.weight.numpy()[120:]).max() < 1e-2

    ckpt = tmp_path / "outputs" / f"ckpt.step{trainer.overall_train_steps}"
    assert ckpt.is_dir()
    env["ckpt_path"] = str(ckpt)
    exec(compile(PALM_PREDICT, "palm_predict", "exec"), env)
    lines = (tmp_path / "outputs" / "predict" / "intent" / "predictions.json").read_text().splitlines()
    assert len(lines) == joint_data["test_examples"]
    first = json.loads(lines[0])
    assert set(first) >= {"index", "label", "logits", "probs"} and abs(sum(first["probs"]) - 1) < 1e-4
