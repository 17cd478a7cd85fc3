"""panopticlab.exercises"""
