import KilnOCI
