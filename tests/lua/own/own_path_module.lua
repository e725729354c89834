-- A module found only along a pattern a service added to package.path (test_package_path).
return { where = "own" }
