/** The one binding instance of this package, shared by its public module and its internal one. */
import { createBinding, type Binding } from '@umfa/api/internal';
import { KoffiDriver } from './driver.js';

/** This package's name, as used in messages. */
export const BINDING = '@umfa/koffi';

export const binding: Binding = createBinding({ name: BINDING, from: import.meta.url, driver: (path, name) => new KoffiDriver(path, name) });
