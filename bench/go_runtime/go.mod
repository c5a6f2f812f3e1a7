module goruntimebench

go 1.19
