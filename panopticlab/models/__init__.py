"""panopticlab.models"""
