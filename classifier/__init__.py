"""Image encoders, group features, the binary group classifier and the filter (see DESIGN.md)."""
