package main

import "context"

func runCmd(ctx context.Context, args []string) error            { return nil }
func ceilingCmd(ctx context.Context, args []string) error        { return nil }
func ceilingSenderCmd(ctx context.Context, args []string) error  { return nil }
