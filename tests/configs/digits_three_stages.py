# The demo's ResNet-18 with three stages that hold different numbers, for tests of several stages:
# a GeM neck (not the plain average of backbone.3) and a head whose pre_logits is a hidden layer.
# (In the demo config the GAP neck equals the pooled backbone.3, and pre_logits equals the neck:
# vistsne stores such stages once.)
_base_ = ['../../configs/digits_resnet18.py']

model = dict(
    neck=dict(_delete_=True, type='GeneralizedMeanPooling', p=3.0),
    head=dict(_delete_=True, type='StackedLinearClsHead', num_classes=10, in_channels=512, mid_channels=[512],
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
