"""panopticlab.postprocess"""
