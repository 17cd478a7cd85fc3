"""panopticlab.viz"""
