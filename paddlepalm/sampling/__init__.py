"""Sampling schedules: which units (tasks or joint groups) each update of a ``MultiHeadTrainer``
draws. ``palm.MultiHeadTrainer(trainers, schedule=palm.sampling.Temperature(2))``; the default
is :class:`Fixed` (PALM's ``mix_ratio``). See docs/multitask.md, "Sampling schedules"."""
from paddlepalm.sampling.base import Mixture, Schedule
from paddlepalm.sampling.dynamic import Dynamic
from paddlepalm.sampling.fixed import Fixed, UniMax
from paddlepalm.sampling.size import Annealed, Proportional, Temperature, Uniform

__all__ = ["Schedule", "Mixture", "Fixed", "Proportional", "Uniform", "Temperature", "Annealed", "UniMax",
           "Dynamic"]
