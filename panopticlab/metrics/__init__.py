"""panopticlab.metrics"""
