# Something-Something V2 test data, shared by the ViT and the Swin
# protocols (sta_vit_ssv2.py, sta_swin_ssv2.py): the validation videos, their
# list and the 174 classes. Frames, clips and crops differ per backbone
# family, so each of those files writes its own test_pipeline and builds the
# dataset as dict(_base_.ssv2_test.dataset, pipeline=test_pipeline).
# It is one key because mmengine refuses a key set by two sibling bases, and
# the Kinetics-400 protocols under them already set model, dataset_type,
# data_root_val, ann_file_test and test_dataloader.
ssv2_test = dict(
    num_classes=174,
    dataset_type='VideoDataset',
    data_root_val='data/sthv2/videos',
    ann_file_test='data/sthv2/sthv2_val_list_videos.txt')
ssv2_test['dataset'] = dict(
    type=ssv2_test['dataset_type'],
    ann_file=ssv2_test['ann_file_test'],
    data_prefix=dict(video=ssv2_test['data_root_val']))
