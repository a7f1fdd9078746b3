/** The one binding instance of this package, shared by its public module and its internal one. */
import { createBinding, type Binding } from '@umfa/api/internal';
import { NapiDriver } from './driver.js';

/** This package's name, as used in messages. */
export const BINDING = '@umfa/napi';

export const binding: Binding = createBinding({ name: BINDING, from: import.meta.url, driver: (path, name) => new NapiDriver(path, name) });
