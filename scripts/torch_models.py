"""PyTorch twins of boengine's network builders (engine/nn/build.c) for 1-channel 28x28-style
inputs, with the same parameter names, so that state dicts move between the two unchanged:

    vgg(depth, width, batchnorm, classes, channels, dropout)   small head: max pools in ceil mode,
        global average pool, classifier 512w-512w-classes (features.N, classifier.0/3/6)
    resnet(depth, width, classes, channels)                     small stem: 3x3/1 conv, no max pool
        (conv1, bn1, layerS.B.convK/bnK/downsample.0/1, fc); bottlenecks from depth 50, stride
        on the 3x3 (v1.5)
    mlp(widths)                                                 fc1..fcK with ReLU between

Used by scripts/gen-train-fixtures and scripts/bench-training with Debian's /usr/bin/python3.
"""
import torch
import torch.nn as nn


def scale(c, width):
    return max(1, int(c * width + 0.5))


VGG_CFGS = {
    11: [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    13: [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    16: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'],
    19: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M'],
}


class VGG(nn.Module):
    def __init__(self, depth, width, batchnorm=True, classes=10, channels=1, dropout=0.5):
        super().__init__()
        layers, c = [], channels
        for v in VGG_CFGS[depth]:
            if v == 'M':
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
                continue
            o = scale(v, width)
            layers.append(nn.Conv2d(c, o, 3, padding=1))
            if batchnorm:
                layers.append(nn.BatchNorm2d(o))
            layers.append(nn.ReLU(inplace=True))
            c = o
        hidden = scale(512, width)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(c, hidden), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(hidden, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class Block(nn.Module):
    def __init__(self, inplanes, planes, stride, expansion):
        super().__init__()
        self.expansion = expansion
        if expansion == 1:
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
        else:
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * expansion, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes * expansion:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * expansion, 1, stride, bias=False), nn.BatchNorm2d(planes * expansion))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.expansion != 1:
            out = self.bn3(self.conv3(self.relu(out)))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


RESNET_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


class ResNet(nn.Module):
    def __init__(self, depth, width, classes=10, channels=1):
        super().__init__()
        expansion = 4 if depth >= 50 else 1
        inplanes = scale(64, width)
        self.conv1 = nn.Conv2d(channels, inplanes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        for stage, count in enumerate(RESNET_BLOCKS[depth]):
            planes = scale(64 << stage, width)
            blocks = []
            for b in range(count):
                blocks.append(Block(inplanes, planes, 2 if b == 0 and stage > 0 else 1, expansion))
                inplanes = planes * expansion
            setattr(self, 'layer%d' % (stage + 1), nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class MLP(nn.Module):
    def __init__(self, widths):
        super().__init__()
        self.count = len(widths) - 1
        for i in range(self.count):
            setattr(self, 'fc%d' % (i + 1), nn.Linear(widths[i], widths[i + 1]))

    def forward(self, x):
        x = torch.flatten(x, 1)
        for i in range(self.count):
            x = getattr(self, 'fc%d' % (i + 1))(x)
            if i + 1 < self.count:
                x = torch.relu(x)
        return x


def vgg(depth, width, batchnorm=True, classes=10, channels=1, dropout=0.5):
    return VGG(depth, width, batchnorm, classes, channels, dropout)


def resnet(depth, width, classes=10, channels=1):
    return ResNet(depth, width, classes, channels)


def mlp(widths):
    return MLP(widths)


def from_arch(arch):
    """The model for boengine's architecture record (the JSON kept in saved files) as a dict."""
    if arch["arch"] == "mlp":
        return mlp(arch["widths"])
    if arch.get("stem") != "small":
        raise ValueError("only the small-stem/small-head variants are defined here")
    if arch["arch"] == "vgg":
        if arch.get("head") != "small":
            raise ValueError("only the small head is defined here")
        return vgg(arch["depth"], arch["width"], arch["batchnorm"], arch["classes"], arch["channels"],
                   arch["dropout"])
    return resnet(arch["depth"], arch["width"], arch["classes"], arch["channels"])
