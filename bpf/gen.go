// Package bpf holds the XDP program of the provisioning interface
// (xdp_pxe.c) and its bpf2go loader. The generated Go file and object are
// committed so `go build` needs no clang; `make generate` rebuilds them
// (clang and llvm from Debian's packages), and CI fails if they differ.
package bpf

//go:generate go tool bpf2go -target bpfel -type config -type bucket -type counter -type mac_key Xdp xdp_pxe.c -- -O2 -g -Wall -Werror
