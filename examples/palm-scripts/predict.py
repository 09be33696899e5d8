# coding=utf-8
"""PALM 2.x's prediction with ``load_predict_model`` (PALM's examples/predict/run.py).

First with the released pretrained folder's ``params/`` (PALM's example: only the backbone is
in it, so the head keeps its initial weights), into ``./outputs/predict/``; then with the last
``ckpt.step{N}`` that ``train_with_eval.py`` wrote (backbone and head), into
``./outputs/predict-ckpt/``. Each ``predictions.json`` has one JSON object per line
(``index``, ``label``, ``logits``, ``probs``).
"""
import glob
import json

import paddlepalm as palm
from paddlepalm.distribute import gpu_dev_count

from make_sample import prepare


def last_checkpoint(save_path):
    return max(glob.glob(save_path + 'ckpt.step*'), key=lambda p: int(p.rsplit('step', 1)[1]))


if __name__ == '__main__':
    prepare()  # writes ./data and ./pretrain/ERNIE-tiny on the first run

    # configs
    max_seqlen = 32
    batch_size = 16
    vocab_path = './pretrain/ERNIE-tiny/vocab.txt'
    predict_file = './data/atis/atis_intent/test.tsv'
    random_seed = 1
    config = json.load(open('./pretrain/ERNIE-tiny/ernie_config.json'))
    input_dim = config['hidden_size']
    num_classes = 4
    task_name = 'atis_intent'
    print_steps = 20
    pre_params = './pretrain/ERNIE-tiny/params'
    trained_path = './outputs/train_with_eval/'
    print('devices: {}'.format(gpu_dev_count))

    # -----------------------  for prediction -----------------------

    for model_path, pred_output in ((pre_params, './outputs/predict/'),
                                    (last_checkpoint(trained_path), './outputs/predict-ckpt/')):
        print('prepare to predict with {}...'.format(model_path))
        predict_cls_reader = palm.reader.ClassifyReader(vocab_path, max_seqlen, seed=random_seed, phase='predict')
        predict_cls_reader.load_data(predict_file, batch_size)
        pred_ernie = palm.backbone.ERNIE.from_config(config, phase='predict')
        predict_cls_reader.register_with(pred_ernie)
        cls_pred_head = palm.head.Classify(num_classes, input_dim, phase='predict')

        trainer = palm.Trainer(task_name)
        trainer.build_predict_forward(pred_ernie, cls_pred_head)
        pred_model = trainer.load_predict_model(model_path)
        trainer.fit_reader(predict_cls_reader, phase='predict')
        print('predicting..')
        trainer.predict(print_steps=print_steps, output_dir=pred_output)
