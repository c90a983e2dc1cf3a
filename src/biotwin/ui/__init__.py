"""What a user sees: plotly figures, explorers, design-space and calibration views (ipywidgets)."""
