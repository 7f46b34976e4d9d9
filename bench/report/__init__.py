"""The run report: Markdown tables, figures, the verdict and learning-curve sections."""
