# The built-in default: MMPretrain's ResNet-18 for CIFAR-10, on scikit-learn's
# digits (1,797 8x8 images upscaled to 32x32, ten classes, a fixed stratified
# 70/30 train/test split). Nothing is downloaded: the digits ship inside the
# scikit-learn wheel, and `vistsne demo` trains the checkpoint on the CPU.
_base_ = ['mmpretrain::resnet/resnet18_8xb16_cifar10.py']

custom_imports = dict(imports=['vistsne.extract.digits'], allow_failed_imports=False)

dataset_type = 'Digits'
data_preprocessor = dict(
    num_classes=10,
    # the digits are white on black: one grey level, repeated in RGB
    mean=[42.0, 42.0, 42.0],
    std=[70.0, 70.0, 70.0],
    to_rgb=False)

model = dict(head=dict(loss=dict(_delete_=True, type='LabelSmoothLoss', label_smooth_val=0.1,
                                 num_classes=10, mode='original', loss_weight=1.0)))

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=2),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    dataset=dict(_delete_=True, type=dataset_type, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    dataset=dict(_delete_=True, type=dataset_type, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = dict(_delete_=True, type='OneCycleLR', eta_max=0.2, pct_start=0.25,
                       by_epoch=False, total_steps=100)
train_cfg = dict(by_epoch=True, max_epochs=5, val_interval=100)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=100, save_last=False),
)
randomness = dict(seed=0, deterministic=False)
