"""How fast the built-in synthetic dataset is drawn, and written in COCO panoptic format.

    python benchmarks/synthetic_speed.py --num 1000 --size 256

Everything runs on one core: the thread pools of numpy's BLAS / OpenMP are limited to
one thread before numpy is imported, and the process is pinned to one CPU where the
operating system allows it. Printed, in images per second:

* ``render_scene``: image and reference annotation, drawn in memory;
* ``second_annotation``: the second annotator's version (it redraws the scene);
* ``write_synthetic_coco``: drawing plus encoding and writing the PNGs and the JSON;
* the peer, reading that same split back from disk with ``CocoPanoptic`` (decoding
  the two PNGs of each image): the ratio says whether drawing a scene on the fly is
  faster than loading it from files.
"""
from __future__ import annotations


from one_core import pin_to_one_core  # noqa: E402  (first: it limits the thread pools)

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from panopticlab.data.coco import CocoPanoptic  # noqa: E402
from panopticlab.data.synthetic import render_scene, second_annotation, write_synthetic_coco  # noqa: E402


def images_per_second(function, num: int) -> float:
    start = time.perf_counter()
    function()
    return num / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=1000, help="number of images (default 1000)")
    parser.add_argument("--size", type=int, nargs="+", default=[256], help="image side, or height and width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder to write the COCO split to (default: a temporary one)")
    args = parser.parse_args()
    size = tuple(args.size) if len(args.size) == 2 else args.size[0]
    print(f"{args.num} images of size {size}, {pin_to_one_core()}")

    render_scene(0, size=size, seed=args.seed)  # warm-up: imports and first-call allocations
    draw = images_per_second(lambda: [render_scene(i, size=size, seed=args.seed) for i in range(args.num)], args.num)
    print(f"render_scene:          {draw:8.1f} images/s  ({1000 / draw:.2f} ms per image)")
    second = images_per_second(lambda: [second_annotation(i, size=size, seed=args.seed) for i in range(args.num)],
                               args.num)
    print(f"second_annotation:     {second:8.1f} images/s  ({1000 / second:.2f} ms per image)")

    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or scratch
        paths = {}

        def write():
            paths.update(write_synthetic_coco(root, split="val", num=args.num, size=size, seed=args.seed,
                                              progress=False))

        written = images_per_second(write, args.num)
        print(f"write_synthetic_coco:  {written:8.1f} images/s  ({1000 / written:.2f} ms per image)")
        split = CocoPanoptic(**paths)
        read = images_per_second(lambda: [split[i] for i in range(len(split))], args.num)
        print(f"peer, CocoPanoptic read back: {read:8.1f} images/s  ({1000 / read:.2f} ms per image)")
    print(f"drawing vs reading from disk: {draw / read:.2f}x as fast")


if __name__ == "__main__":
    main()
