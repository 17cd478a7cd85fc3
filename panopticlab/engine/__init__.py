"""panopticlab.engine"""
