#!/usr/bin/env node
import { main } from '../dist/esm/cli/main.js'

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    console.error('mm-platform:', err)
    process.exitCode = 1
  }
)
