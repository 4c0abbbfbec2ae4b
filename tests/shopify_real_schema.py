"""Comparing the emulator's schema subset with Shopify's real Admin schema of the same version."""

from __future__ import annotations

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
)


def differences(subset: GraphQLSchema, real: GraphQLSchema) -> list[str]:
    """Every type, field, argument, input field, enum value and directive of `subset` that the real
    schema lacks or types differently ("Order.refunds: [Refund!]! here, [Refund] there")."""
    found: list[str] = []
    roots = {
        "QueryRoot": real.query_type.name if real.query_type else "",
        "Mutation": real.mutation_type.name if real.mutation_type else "",
    }
    for name, mine in subset.type_map.items():
        if name.startswith("__") or name in ("String", "Int", "Float", "Boolean", "ID"):
            continue
        theirs = real.type_map.get(roots.get(name, name))
        if theirs is None:
            found.append(f"type {name} does not exist")
            continue
        if type(theirs) is not type(mine):
            found.append(f"type {name} is a {type(theirs).__name__} there, a {type(mine).__name__} here")
            continue
        if isinstance(mine, GraphQLObjectType | GraphQLInterfaceType):
            assert isinstance(theirs, GraphQLObjectType | GraphQLInterfaceType)
            for field_name, field in mine.fields.items():
                other = theirs.fields.get(field_name)
                if other is None:
                    found.append(f"field {name}.{field_name} does not exist")
                    continue
                if str(other.type) != str(field.type):
                    found.append(f"field {name}.{field_name}: {field.type} here, {other.type} there")
                for arg_name, arg in field.args.items():
                    real_arg = other.args.get(arg_name)
                    if real_arg is None:
                        found.append(f"argument {name}.{field_name}({arg_name}) does not exist")
                    elif str(real_arg.type) != str(arg.type):
                        found.append(
                            f"argument {name}.{field_name}({arg_name}): {arg.type} here, {real_arg.type} there"
                        )
                for arg_name, real_arg in other.args.items():
                    if (
                        arg_name not in field.args
                        and str(real_arg.type).endswith("!")
                        and real_arg.default_value is None
                    ):
                        found.append(f"required argument {name}.{field_name}({arg_name}) is missing here")
            if isinstance(mine, GraphQLObjectType):
                assert isinstance(theirs, GraphQLObjectType)
                mine_interfaces = {i.name for i in mine.interfaces}
                real_interfaces = {i.name for i in theirs.interfaces}
                for missing in sorted(mine_interfaces - real_interfaces):
                    found.append(f"type {name} does not implement {missing}")
        elif isinstance(mine, GraphQLInputObjectType):
            assert isinstance(theirs, GraphQLInputObjectType)
            for field_name, field in mine.fields.items():
                other_input = theirs.fields.get(field_name)
                if other_input is None:
                    found.append(f"input field {name}.{field_name} does not exist")
                elif str(other_input.type) != str(field.type):
                    found.append(f"input field {name}.{field_name}: {field.type} here, {other_input.type} there")
            for field_name, other_input in theirs.fields.items():
                if field_name not in mine.fields and str(other_input.type).endswith("!"):
                    found.append(f"required input field {name}.{field_name} is missing here")
        elif isinstance(mine, GraphQLEnumType):
            assert isinstance(theirs, GraphQLEnumType)
            for value in mine.values:
                if value not in theirs.values:
                    found.append(f"enum value {name}.{value} does not exist")
        elif isinstance(mine, GraphQLUnionType):
            assert isinstance(theirs, GraphQLUnionType)
            real_members = {t.name for t in theirs.types}
            for member in mine.types:
                if member.name not in real_members:
                    found.append(f"union {name} has no member {member.name}")
    real_directives = {d.name: d for d in real.directives}
    for directive in subset.directives:
        other_directive = real_directives.get(directive.name)
        if other_directive is None:
            found.append(f"directive @{directive.name} does not exist")
            continue
        for arg_name, arg in directive.args.items():
            real_arg = other_directive.args.get(arg_name)
            if real_arg is None or str(real_arg.type) != str(arg.type):
                found.append(f"directive @{directive.name}({arg_name}: {arg.type}) differs")
    return found
