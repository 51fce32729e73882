// Types for require('mm-platform/services/mainline'): the API of the ESM entry (./index.ts).
import type * as lib from './index.js' with { 'resolution-mode': 'import' }
declare const service: typeof lib
export = service
