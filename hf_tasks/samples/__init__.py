"""Small sample files and tiny models written by this project, for the offline demos and the tests."""
