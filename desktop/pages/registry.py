"""The list that builds the main window's tabs, in order (Alt+1 … Alt+N)."""

from __future__ import annotations

from desktop.pages.base import Page
from desktop.pages.batch.page import BatchPage
from desktop.pages.inspect.page import InspectPage
from desktop.pages.playground.page import PlaygroundPage
from desktop.pages.task.page import TaskOverviewPage
from desktop.pages.training.page import TrainingPage

PAGES: tuple[type[Page], ...] = (TaskOverviewPage, PlaygroundPage, TrainingPage, BatchPage,
                                 InspectPage)
