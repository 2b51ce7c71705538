"""The networks of boengine's nn module built from torchvision's own classes, for the fixture
generator and the inference benchmark (run with Debian's /usr/bin/python3).

vgg(...) and resnet(...) take the arguments of nn.vgg{...} and nn.resnet{...}: widths scaled by
`width` with boengine's rounding, stem = "small" / head = "small" variants made by modifying the
torchvision module, so tensor names stay torchvision's. randomize() gives every weight, bias
and batch-norm statistic a seeded random value of a sensible scale.
"""
import math

import torch
from torch import nn
from torchvision.models import resnet as tv_resnet
from torchvision.models import vgg as tv_vgg

VGG_CFG = {11: "A", 13: "B", 16: "D", 19: "E"}
RESNET_BLOCKS = {
    18: (tv_resnet.BasicBlock, [2, 2, 2, 2]), 34: (tv_resnet.BasicBlock, [3, 4, 6, 3]),
    50: (tv_resnet.Bottleneck, [3, 4, 6, 3]), 101: (tv_resnet.Bottleneck, [3, 4, 23, 3]),
    152: (tv_resnet.Bottleneck, [3, 8, 36, 3]),
}


def scaled(c, width):
    """boengine's channel rounding: max(1, floor(c*width + 0.5))."""
    return max(1, int(math.floor(c * width + 0.5)))


def vgg(depth=16, batchnorm=False, channels=3, classes=1000, width=1.0, stem="torchvision",
        head="torchvision"):
    cfg = [v if v == "M" else scaled(v, width) for v in tv_vgg.cfgs[VGG_CFG[depth]]]
    features = tv_vgg.make_layers(cfg, batch_norm=batchnorm)
    features[0] = nn.Conv2d(channels, cfg[0], kernel_size=3, padding=1)  # make_layers assumes 3
    model = tv_vgg.VGG(features, num_classes=classes, init_weights=True)
    if stem == "small":
        for m in model.features:
            if isinstance(m, nn.MaxPool2d):
                m.ceil_mode = True
    c = cfg[-2]  # the last conv's channels (cfg ends with "M")
    if head == "small":
        h = scaled(512, width)
        model.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        model.classifier = nn.Sequential(
            nn.Linear(c, h), nn.ReLU(True), nn.Dropout(), nn.Linear(h, h), nn.ReLU(True),
            nn.Dropout(), nn.Linear(h, classes))
    elif c != 512:
        model.classifier[0] = nn.Linear(c * 7 * 7, 4096)
    return model


def resnet(depth=18, channels=3, classes=1000, width=1.0, stem="torchvision"):
    block, layers = RESNET_BLOCKS[depth]
    model = tv_resnet.ResNet(block, layers, num_classes=classes)
    w = [scaled(c, width) for c in (64, 128, 256, 512)]
    # Rebuild the width-dependent parts with torchvision's own _make_layer.
    model.inplanes = w[0]
    if stem == "small":
        model.conv1 = nn.Conv2d(channels, w[0], kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    else:
        model.conv1 = nn.Conv2d(channels, w[0], kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(w[0])
    model.layer1 = model._make_layer(block, w[0], layers[0])
    model.layer2 = model._make_layer(block, w[1], layers[1], stride=2)
    model.layer3 = model._make_layer(block, w[2], layers[2], stride=2)
    model.layer4 = model._make_layer(block, w[3], layers[3], stride=2)
    model.fc = nn.Linear(w[3] * block.expansion, classes)
    return model


class MLP(nn.Module):
    """nn.mlp{784, h1, h2, classes}: fc1, fc2, fc3 with ReLU between; the input is flattened."""

    def __init__(self, sizes):
        super().__init__()
        self.n = len(sizes) - 1
        for i in range(self.n):
            setattr(self, "fc%d" % (i + 1), nn.Linear(sizes[i], sizes[i + 1]))

    def forward(self, x):
        x = torch.flatten(x, 1)
        for i in range(self.n):
            x = getattr(self, "fc%d" % (i + 1))(x)
            if i + 1 < self.n:
                x = torch.relu(x)
        return x


def randomize(model, gen, calibration=None):
    """He-normal weights, small random biases; then, when a calibration batch is given and the
    model has batch norm, running statistics measured on it and perturbed (random shifts and
    scales of mean and variance, random gamma and beta): non-trivial but well-scaled."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    m.bias.copy_((torch.rand(m.bias.shape, generator=gen) - 0.5) * 0.2)
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        if bns and calibration is not None:
            for m in bns:
                m.reset_running_stats()
                m.momentum = None  # cumulative average: one batch gives its statistics
            model.train()
            model(calibration)
            for m in bns:
                m.momentum = 0.1
                sd = m.running_var.sqrt()
                m.running_mean.add_(0.2 * sd * torch.randn(sd.shape, generator=gen))
                m.running_var.mul_(torch.exp(0.4 * torch.randn(sd.shape, generator=gen)))
                m.weight.copy_(0.6 + 0.8 * torch.rand(sd.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(sd.shape, generator=gen))
    model.eval()
    return model


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def conv_macs(model, x):
    """Multiply-accumulates per image of the convolutions and of the linear layers."""
    conv, lin = [0], [0]

    def on_conv(m, inp, out):
        conv[0] += out[0].numel() * m.weight[0].numel()

    def on_linear(m, inp, out):
        lin[0] += m.weight.numel()

    hooks = [m.register_forward_hook(on_conv) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(on_linear) for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(x[:1])
    for h in hooks:
        h.remove()
    return conv[0], lin[0]
