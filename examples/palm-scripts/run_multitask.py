# coding=utf-8
"""PALM 2.x's joint slot filling + intent detection training (PALM's examples/multi-task/run.py).

One ERNIE shared by a ``SequenceLabel`` head ("slot") and a ``Classify`` head ("intent"), a task
drawn per step by mix ratio. ``save_type='ckpt,predict'`` writes, every ``save_steps`` steps and
at the end, ``./outputs/multi-task/ckpt.step{N}/`` (for ``joint_predict.py``) and
``./outputs/multi-task/pred.step{N}/<task>/`` (a Paddle inference model per task).
"""
import json

import paddlepalm as palm
from paddlepalm.distribute import gpu_dev_count

from make_sample import prepare


if __name__ == '__main__':
    prepare()  # writes ./data and ./pretrain/ERNIE-tiny on the first run

    # configs
    max_seqlen = 32
    batch_size = 16
    num_epochs = 3
    print_steps = 5
    lr = 5e-3
    num_classes = 16  # more than the 13 tags of label_map.json, as PALM's 130 for ATIS's 127
    weight_decay = 0.01
    num_classes_intent = 4
    dropout_prob = 0.1
    random_seed = 0
    label_map = './data/atis/atis_slot/label_map.json'
    vocab_path = './pretrain/ERNIE-tiny/vocab.txt'

    train_slot = './data/atis/atis_slot/train.tsv'
    train_intent = './data/atis/atis_intent/train.tsv'
    save_path = './outputs/multi-task/'
    save_type = 'ckpt,predict'

    pre_params = './pretrain/ERNIE-tiny/params'
    config = json.load(open('./pretrain/ERNIE-tiny/ernie_config.json'))
    input_dim = config['hidden_size']

    # -----------------------  for training -----------------------

    seq_label_reader = palm.reader.SequenceLabelReader(vocab_path, max_seqlen, label_map, seed=random_seed)
    cls_reader = palm.reader.ClassifyReader(vocab_path, max_seqlen, seed=random_seed)
    seq_label_reader.load_data(train_slot, file_format='tsv', num_epochs=None, batch_size=batch_size)
    cls_reader.load_data(train_intent, batch_size=batch_size, num_epochs=None)

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

    n_steps = seq_label_reader.num_examples * 2 * num_epochs // batch_size
    warmup_steps = int(0.1 * n_steps)
    sched = palm.lr_sched.TriangularSchedualer(warmup_steps, n_steps)
    adam = palm.optimizer.Adam(loss_var, lr, sched)
    trainer.build_backward(optimizer=adam, weight_decay=weight_decay)

    trainer.fit_readers_with_mixratio([seq_label_reader, cls_reader], "slot", num_epochs)

    trainer.load_pretrain(pre_params)
    save_steps = n_steps // 2
    trainer.set_saver(save_path=save_path, save_steps=save_steps, save_type=save_type)
    print('devices: {}, steps: {}, saving every {}'.format(gpu_dev_count, trainer.overall_train_steps, save_steps))
    trainer.train(print_steps=print_steps)
