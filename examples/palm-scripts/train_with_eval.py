# coding=utf-8
"""PALM 2.x's train-with-evaluation idiom (PALM's examples/train_with_eval/run.py), on paddlepalm.

The training loop is the script's own: ``for batch in trainer.fit_reader(reader)`` and
``trainer.train_one_step(batch)``; the saver set with ``set_saver`` writes ``ckpt.step{N}``
from inside ``train_one_step``. Every ``eval_steps`` steps a prediction trainer loads the
checkpoint just written and scores the dev set. At the end the test set is predicted into
``./outputs/train_with_eval/predict/predictions.json`` (one JSON object per line).
"""
import json

import paddlepalm as palm
from paddlepalm.distribute import gpu_dev_count

from make_sample import prepare


def read_labels(path):
    labels = []
    with open(path, 'r', encoding='utf-8') as f:
        header = f.readline().rstrip('\n').split('\t')
        for line in f:
            if line.strip():
                labels.append(int(line.rstrip('\n').split('\t')[header.index('label')]))
    return labels


if __name__ == '__main__':
    prepare()  # writes ./data and ./pretrain/ERNIE-tiny on the first run

    # configs
    max_seqlen = 32
    batch_size = 16
    num_epochs = 5
    lr = 5e-3
    weight_decay = 0.01
    vocab_path = './pretrain/ERNIE-tiny/vocab.txt'

    train_file = './data/atis/atis_intent/train.tsv'
    dev_file = './data/atis/atis_intent/dev.tsv'
    predict_file = './data/atis/atis_intent/test.tsv'
    config = json.load(open('./pretrain/ERNIE-tiny/ernie_config.json'))
    input_dim = config['hidden_size']
    num_classes = 4
    dropout_prob = 0.1
    random_seed = 1
    task_name = 'atis_intent'
    save_path = './outputs/train_with_eval/'
    pred_output = './outputs/train_with_eval/predict/'
    save_type = 'ckpt'
    eval_steps = 25
    pre_params = './pretrain/ERNIE-tiny/params'
    print('devices: {}'.format(gpu_dev_count))

    # -----------------------  for training -----------------------

    cls_reader = palm.reader.ClassifyReader(vocab_path, max_seqlen, seed=random_seed)
    cls_reader.load_data(train_file, batch_size, num_epochs=num_epochs)
    ernie = palm.backbone.ERNIE.from_config(config)
    cls_reader.register_with(ernie)
    cls_head = palm.head.Classify(num_classes, input_dim, dropout_prob)

    trainer = palm.Trainer(task_name)
    loss_var = trainer.build_forward(ernie, cls_head)

    n_steps = cls_reader.num_examples * num_epochs // batch_size
    warmup_steps = int(0.1 * n_steps)
    sched = palm.lr_sched.TriangularSchedualer(warmup_steps, n_steps)
    adam = palm.optimizer.Adam(loss_var, lr, sched)
    trainer.build_backward(optimizer=adam, weight_decay=weight_decay)

    # fit_reader returns the training batches: the loop below is the training
    iterator = trainer.fit_reader(cls_reader)
    trainer.load_pretrain(pre_params)
    # a checkpoint at every evaluation: the evaluating trainer reads it back
    trainer.set_saver(save_steps=eval_steps, save_path=save_path, save_type=save_type)

    # -----------------------  for evaluation -----------------------

    dev_reader = palm.reader.ClassifyReader(vocab_path, max_seqlen, seed=random_seed, phase='predict')
    dev_reader.load_data(dev_file, batch_size)
    pred_ernie = palm.backbone.ERNIE.from_config(config, phase='predict')
    dev_reader.register_with(pred_ernie)
    cls_pred_head = palm.head.Classify(num_classes, input_dim, phase='predict')
    evaluator = palm.Trainer(task_name)
    evaluator.build_predict_forward(pred_ernie, cls_pred_head)
    evaluator.fit_reader(dev_reader, phase='predict')
    dev_labels = read_labels(dev_file)

    for step, batch in enumerate(iterator, start=1):
        outputs = trainer.train_one_step(batch)
        if step % eval_steps == 0:
            print('do evaluation.')
            evaluator.load_ckpt(save_path + 'ckpt.step' + str(step))
            preds = [p['label'] for p in evaluator.predict(print_steps=0)]
            acc = sum(int(p == l) for p, l in zip(preds, dev_labels)) / len(dev_labels)
            print('step {}: loss {:.3f}, dev accuracy {:.4f}'.format(step, outputs['loss'], acc))

    # -----------------------  for prediction -----------------------

    print('prepare to predict...')
    predict_cls_reader = palm.reader.ClassifyReader(vocab_path, max_seqlen, seed=random_seed, phase='predict')
    predict_cls_reader.load_data(predict_file, batch_size)
    predict_cls_reader.register_with(pred_ernie)
    evaluator.load_ckpt(save_path + 'ckpt.step' + str(trainer.cur_train_step))
    evaluator.fit_reader(predict_cls_reader, phase='predict')
    print('predicting..')
    evaluator.predict(print_steps=20, output_dir=pred_output)
