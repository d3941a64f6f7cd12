"""The recipes, one file each, declared at the end of the file (`hf_tasks.registry`). A plain install ships
this folder as the package `hf_tasks_recipes`."""
