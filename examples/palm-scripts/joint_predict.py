# coding=utf-8
"""PALM 2.x's joint prediction of both heads (PALM's examples/multi-task/joint_predict.py).

Run after ``run_multitask.py``. Builds prediction trainers for "slot" and "intent" on one
prediction backbone, loads the last ``ckpt.step{N}``, merges the two prediction readers and
predicts each task batch by batch with ``predict_one_batch(task_name, batch)``. The heads'
``batch_postprocess``/``epoch_postprocess`` write PALM's files:
``./outputs/multi-task/predict-slot/predictions.json`` (one JSON list of tag ids per line, one
id per word of the input) and ``./outputs/multi-task/predict-intent/predictions.json`` (one
JSON object per line). Score them with ``evaluate.py``.
"""
import glob
import json

import paddlepalm as palm
from paddlepalm.distribute import gpu_dev_count


def last_checkpoint(save_path):
    return max(glob.glob(save_path + 'ckpt.step*'), key=lambda p: int(p.rsplit('step', 1)[1]))


if __name__ == '__main__':

    # configs
    max_seqlen = 32
    batch_size = 16
    num_classes = 16
    num_classes_intent = 4
    dropout_prob = 0.1
    random_seed = 0
    label_map = './data/atis/atis_slot/label_map.json'
    vocab_path = './pretrain/ERNIE-tiny/vocab.txt'

    test_slot = './data/atis/atis_slot/test.tsv'
    test_intent = './data/atis/atis_intent/test.tsv'
    save_path = './outputs/multi-task/'

    config = json.load(open('./pretrain/ERNIE-tiny/ernie_config.json'))
    input_dim = config['hidden_size']

    # -----------------------  for prediction -----------------------

    slot_reader = palm.reader.SequenceLabelReader(vocab_path, max_seqlen, label_map, seed=random_seed, phase='predict')
    intent_reader = palm.reader.ClassifyReader(vocab_path, max_seqlen, seed=random_seed, phase='predict')
    slot_reader.load_data(test_slot, file_format='tsv', num_epochs=None, batch_size=batch_size)
    intent_reader.load_data(test_intent, batch_size=batch_size, num_epochs=None)

    ernie = palm.backbone.ERNIE.from_config(config, phase='predict')
    slot_reader.register_with(ernie)
    intent_reader.register_with(ernie)

    slot_head = palm.head.SequenceLabel(num_classes, input_dim, dropout_prob, phase='predict')
    intent_head = palm.head.Classify(num_classes_intent, input_dim, dropout_prob, phase='predict')

    trainer_slot = palm.Trainer("slot", mix_ratio=1.0)
    trainer_intent = palm.Trainer("intent", mix_ratio=1.0)
    trainer = palm.MultiHeadTrainer([trainer_slot, trainer_intent])
    vars = trainer_intent.build_predict_forward(ernie, intent_head)
    vars = trainer_slot.build_predict_forward(ernie, slot_head)
    loss_var = trainer.build_predict_forward()

    trainer.load_ckpt(last_checkpoint(save_path))

    joint_iterator = trainer.merge_inference_readers([slot_reader, intent_reader])
    print('devices: {}'.format(gpu_dev_count))

    for task_name, head, reader in (('slot', slot_head, slot_reader), ('intent', intent_head, intent_reader)):
        print('processing {} examples...'.format(task_name))
        print('num examples: ' + str(reader.num_examples))
        cnt = 0
        for batch in joint_iterator(task_name):
            outputs = trainer.predict_one_batch(task_name, batch)
            cnt += len(outputs['logits'])
            head.batch_postprocess(outputs)
        print(str(cnt) + 'th example processed.')
        head.epoch_postprocess(None, output_dir=save_path + 'predict-' + task_name)
        head.reset()
